import Foundation

/// Reads secrets from environment variables, or from files named by `<NAME>_FILE`.
///
/// `<NAME>_FILE` is the convention of Docker and Kubernetes secrets and of Vault agent templates:
/// the variable holds a path and the file holds the value. Surrounding whitespace (the trailing
/// newline editors and `echo` add) is trimmed. Setting both forms is refused as ambiguous.
public struct SecretSource: Sendable {
    public var environment: [String: String]

    public init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.environment = environment
    }

    /// The secret `name` from `name` or `name_FILE`, or `nil` when neither is set.
    public func optional(_ name: String) throws(SecretError) -> Secret? {
        let direct = environment[name]
        let path = environment["\(name)_FILE"]
        switch (direct, path) {
        case (nil, nil):
            return nil
        case (.some, .some):
            throw .ambiguous(name: name)
        case (let value?, nil):
            return try nonEmpty(name, value)
        case (nil, let path?):
            let contents: String
            do {
                contents = try String(contentsOfFile: path, encoding: .utf8)
            } catch {
                throw .unreadableFile(name: "\(name)_FILE", path: path)
            }
            return try nonEmpty("\(name)_FILE", contents)
        }
    }

    /// The secret `name`; missing is an error naming both accepted variables.
    public func required(_ name: String) throws(SecretError) -> Secret {
        guard let secret = try optional(name) else { throw .missing(name: name) }
        return secret
    }

    private func nonEmpty(_ name: String, _ raw: String) throws(SecretError) -> Secret {
        let trimmed = raw.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !trimmed.isEmpty else { throw .empty(name: name) }
        return Secret(trimmed)
    }
}

/// Why a secret could not be read. Messages name the variable, never its value.
public enum SecretError: Error, Sendable, Equatable, CustomStringConvertible {
    case missing(name: String)
    case ambiguous(name: String)
    case empty(name: String)
    case unreadableFile(name: String, path: String)
    /// Present but not acceptable (too short, wrong format); `reason` never quotes the value.
    case invalid(name: String, reason: String)

    public var description: String {
        switch self {
        case .missing(let name): "\(name) is not set (set \(name) or \(name)_FILE)"
        case .ambiguous(let name): "both \(name) and \(name)_FILE are set; set only one"
        case .empty(let name): "\(name) is empty"
        case .unreadableFile(let name, let path): "\(name) names \(path), which cannot be read"
        case .invalid(let name, let reason): "\(name) is not acceptable: \(reason)"
        }
    }
}

extension SecretSource {
    /// The file `name` is read from (`<NAME>_FILE`), or `nil` when it is given directly or not at all.
    public func file(of name: String) -> String? {
        environment["\(name)_FILE"].flatMap { $0.isEmpty ? nil : $0 }
    }

    /// `SLUICE_SECRETS_POLL_INTERVAL`: seconds between looks at the secret files (default 5).
    public func pollInterval() throws(SecretError) -> Duration {
        let name = "SLUICE_SECRETS_POLL_INTERVAL"
        guard let text = environment[name] else { return .seconds(5) }
        guard let seconds = Double(text), seconds >= 0.1, seconds <= 3600 else {
            throw .invalid(name: name, reason: "must be a number of seconds from 0.1 to 3600")
        }
        return .milliseconds(Int(seconds * 1000))
    }
}
