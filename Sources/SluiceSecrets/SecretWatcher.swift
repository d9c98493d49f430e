import Foundation
import Logging
import ServiceLifecycle
import UnixSignals

/// How a changed secret fared; the `outcome` label of `sluice_secret_reloads_total`.
public enum SecretReloadOutcome: String, Sendable {
    /// Read, accepted and in use.
    case ok
    /// The file is gone or cannot be read.
    case unreadable
    /// Read, but empty, weak or malformed.
    case invalid
    /// Well-formed, but the service it is for refused it (Redis answered `WRONGPASS`, a TLS
    /// handshake failed): tried again at every poll until it is taken or the file changes.
    case refused
}

/// Why a changed secret was not taken. The reason names the variable or file, never the value.
public struct SecretReloadError: Error, Sendable, CustomStringConvertible {
    public var outcome: SecretReloadOutcome
    public var reason: String

    public init(_ outcome: SecretReloadOutcome, _ reason: String) {
        self.outcome = outcome
        self.reason = reason
    }

    /// A secret that could not be read again: gone or unreadable, else not acceptable.
    public init(_ error: SecretError) {
        switch error {
        case .missing, .unreadableFile: self.init(.unreadable, error.description)
        case .ambiguous, .empty, .invalid: self.init(.invalid, error.description)
        }
    }

    public var description: String { reason }
}

/// A secret held in files (`<NAME>_FILE`) that can be taken again while the process runs.
public struct ReloadableSecret: Sendable {
    /// The variable it comes from, e.g. `REDIS_PASSWORD`: the `secret` label and what logs name.
    public var name: String
    /// The files whose content is compared; a change to any of them reloads the secret.
    public var files: [String]
    /// Reads the files again, checks and applies the new value; throws to keep the current one.
    public var reload: @Sendable () async throws(SecretReloadError) -> Void

    public init(name: String, files: [String], reload: @escaping @Sendable () async throws(SecretReloadError) -> Void) {
        self.name = name
        self.files = files
        self.reload = reload
    }
}

/// Takes secrets again when a secrets manager rewrites their files, and on SIGHUP.
///
/// Vault Agent, the Secrets Store CSI driver, External Secrets and Kubernetes' own Secret volumes
/// replace a mounted file by swapping a symlink (`..data`), which leaves the mtime of the path one
/// reads unreliable; so every poll reads the files' *content* and compares it with what was seen
/// last. A change that is refused (unreadable, weak, or refused by Redis) keeps the value in use
/// and is logged and counted once per distinct content; one refused by the service it is for is
/// tried again at every poll, since a credential is often written a moment before it is valid.
/// SIGHUP reloads every secret at once, changed or not.
public actor SecretWatcher: Service {
    private let secrets: [ReloadableSecret]
    private let interval: Duration
    private let logger: Logger
    private let onOutcome: @Sendable (_ secret: String, _ outcome: SecretReloadOutcome) -> Void
    /// Per secret: the content last seen (a `nil` entry for a file that could not be read) and
    /// whether it waits to be tried again.
    private var seen: [String: (content: [[UInt8]?], retry: Bool)] = [:]

    /// - Parameters:
    ///   - interval: how often the files are read (`SLUICE_SECRETS_POLL_INTERVAL`).
    ///   - onOutcome: told each reload's outcome (the metric).
    public init(
        secrets: [ReloadableSecret], interval: Duration, logger: Logger,
        onOutcome: @escaping @Sendable (_ secret: String, _ outcome: SecretReloadOutcome) -> Void
    ) {
        self.secrets = secrets
        self.interval = interval
        self.logger = logger
        self.onOutcome = onOutcome
        for secret in secrets { seen[secret.name] = (Self.read(secret.files), false) }
    }

    /// Reloads the secrets whose files changed since the last look (all of them with `force`);
    /// returns the outcomes, by secret.
    @discardableResult
    public func check(force: Bool = false) async -> [String: SecretReloadOutcome] {
        var outcomes: [String: SecretReloadOutcome] = [:]
        for secret in secrets {
            let content = Self.read(secret.files)
            let last = seen[secret.name]
            let changed = last.map { $0.content != content } ?? true
            guard force || changed || last?.retry == true else { continue }
            let outcome: SecretReloadOutcome
            do {
                try await secret.reload()
                outcome = .ok
                logger.notice("reloaded a secret", metadata: ["secret": "\(secret.name)"])
            } catch {
                outcome = error.outcome
                // Once per content: a retry of the same refused value is silent.
                if force || changed {
                    logger.error(
                        "secret not reloaded; the one in use is kept",
                        metadata: ["secret": "\(secret.name)", "outcome": "\(outcome.rawValue)", "reason": "\(error.reason)"])
                }
            }
            seen[secret.name] = (content, outcome == .refused)
            if force || changed || outcome == .ok { onOutcome(secret.name, outcome) }
            outcomes[secret.name] = outcome
        }
        return outcomes
    }

    /// Polls every ``interval`` and reloads everything on SIGHUP, until the service group shuts down.
    public func run() async throws {
        // A service group ends when one of its services returns: with nothing to watch, wait.
        guard !secrets.isEmpty else { return try await gracefulShutdown() }
        // Trapped before the first poll, so a SIGHUP never takes the signal's default action (exit).
        let hangups = await UnixSignalsSequence(trapping: .sighup)
        logger.info(
            "watching secret files", metadata: ["secrets": "\(secrets.map(\.name))", "poll_interval": "\(interval)"])
        await withTaskGroup(of: Void.self) { group in
            group.addTask { [self] in
                for await _ in hangups { await check(force: true) }
            }
            group.addTask { [self] in
                while (try? await Task.sleep(for: interval)) != nil {
                    await check()
                }
            }
            try? await gracefulShutdown()
            group.cancelAll()
        }
    }

    /// The files' bytes as they are now (symlinks followed).
    private static func read(_ files: [String]) -> [[UInt8]?] {
        files.map { path in FileManager.default.contents(atPath: path).map { Array($0) } }
    }
}
