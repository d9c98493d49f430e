import Foundation

/// A directory of secret files laid out and replaced the way Kubernetes, Vault Agent and the
/// Secrets Store CSI driver do it (`deploy/secret-swap`: a `..data` symlink swapped in one rename).
public struct SecretDirectory: Sendable {
    public let path: String

    /// The repository's `deploy/secret-swap`.
    public static let swapScript = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../../deploy/secret-swap").standardized.path

    /// A fresh private directory holding `files` (name: content).
    public init(_ files: [String: String]) throws {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-secrets-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        try swap(files)
    }

    public func file(_ name: String) -> String { "\(path)/\(name)" }

    /// Replaces the named files' content at once (the others stay), through `deploy/secret-swap`.
    public func swap(_ files: [String: String]) throws {
        let incoming = "\(path)/.incoming"
        try FileManager.default.createDirectory(atPath: incoming, withIntermediateDirectories: true)
        for (name, content) in files { try content.write(toFile: "\(incoming)/\(name)", atomically: true, encoding: .utf8) }
        let swapped = try runCommand([Self.swapScript, path] + files.keys.sorted())
        guard swapped.status == 0 else { throw TestSupportError("secret-swap failed: \(swapped.output)") }
    }

    /// Takes `name` away (as a manager does when a secret is deleted): readers find no file.
    public func remove(_ name: String) throws {
        try FileManager.default.removeItem(atPath: file(name))
    }
}

/// The value of one sample of a Prometheus text exposition: the line of `name` whose labels
/// include every one of `labels`; `nil` if there is none.
public func metricSample(_ exposition: String, _ name: String, _ labels: [String: String] = [:]) -> Double? {
    for line in exposition.split(separator: "\n") where line.hasPrefix(name) {
        let rest = line.dropFirst(name.count)
        guard rest.first == "{" || rest.first == " " else { continue }
        guard labels.allSatisfy({ rest.contains("\($0.key)=\"\($0.value)\"") }) else { continue }
        return line.split(separator: " ").last.flatMap { Double($0) }
    }
    return nil
}
