import ArgumentParser
import Foundation
import Logging
import SluiceRedis

/// One setting of `sluice serve` or `sluice worker`, declared once: its flag, its environment
/// variable, its default and what it does. `--help` is written from it, and the flag's text and
/// the variable's are read by the same rule (the flag wins), so a bad value is refused alike,
/// naming both. `docs/configuration.md` is checked against the flags and variables
/// (DocumentationTests).
struct CommandSetting<Value: Sendable>: Sendable {
    let flag: String
    /// `nil`: a flag only.
    let variable: String?
    let defaultValue: Value?
    /// The default as `--help` states it; `nil` when there is none.
    let defaultText: String?
    let summary: String
    /// What a valid value is, for the refusal ("more than 0 and at most 86400 seconds").
    let rule: String
    let parse: @Sendable (String) -> Value?

    /// The flag's help: what it does, its default and its variable.
    var help: ArgumentHelp {
        var text = summary.hasSuffix(".") ? String(summary.dropLast()) : summary
        if let defaultText { text += " (default \(defaultText))" }
        text += "."
        if let variable { text += " Env: \(variable)." }
        return ArgumentHelp(text)
    }

    /// The flag's value, else the variable's, else the default.
    func value(_ flagText: String?, _ environment: [String: String]) throws -> Value? {
        guard let text = flagText ?? variable.flatMap({ environment[$0] }) else { return defaultValue }
        guard let value = parse(text) else {
            throw ValidationError("\(([flag] + (variable.map { [$0] } ?? [])).joined(separator: "/")) must be \(rule), not \"\(text)\"")
        }
        return value
    }

    /// ``value(_:_:)`` of a setting that has a default.
    func value(_ flagText: String?, _ environment: [String: String]) throws -> Value {
        guard let value: Value = try value(flagText, environment) else { preconditionFailure("\(flag) has no default") }
        return value
    }
}

extension CommandSetting where Value == String {
    static func text(_ flag: String, _ variable: String?, default defaultValue: String? = nil, _ summary: String) -> Self {
        Self(
            flag: flag, variable: variable, defaultValue: defaultValue, defaultText: defaultValue, summary: summary, rule: "not empty",
            parse: { $0.isEmpty ? nil : $0 })
    }
}

extension CommandSetting where Value == Int {
    /// A whole number within `range`.
    static func count(
        _ flag: String, _ variable: String?, default defaultValue: Int?, defaultText: String? = nil, _ range: ClosedRange<Int>,
        _ summary: String
    ) -> Self {
        Self(
            flag: flag, variable: variable, defaultValue: defaultValue, defaultText: defaultText ?? defaultValue.map(String.init),
            summary: summary,
            rule: range.upperBound == .max ? "a whole number of at least \(range.lowerBound)" : "a whole number from \(range.lowerBound) to \(range.upperBound)",
            parse: { Int($0).flatMap { range.contains($0) ? $0 : nil } })
    }

    /// A TCP port; 0 asks the system for any free one.
    static func port(_ flag: String, _ variable: String, default defaultValue: Int, _ summary: String) -> Self {
        count(flag, variable, default: defaultValue, 0...65535, summary)
    }
}

extension CommandSetting where Value == Duration {
    /// Seconds, more than `minimum` (0: more than 0) and at most `maximum`.
    static func seconds(
        _ flag: String, _ variable: String?, default defaultValue: Double, minimum: Double = 0, maximum: Double = 86_400, _ summary: String
    ) -> Self {
        let rule = minimum > 0 ? "from \(minimum) to \(Int(maximum)) seconds" : "more than 0 and at most \(Int(maximum)) seconds"
        return Self(
            flag: flag, variable: variable, defaultValue: .milliseconds(Int64(defaultValue * 1000)),
            defaultText: defaultValue == defaultValue.rounded() ? "\(Int(defaultValue)) s" : "\(defaultValue) s", summary: summary, rule: rule,
            parse: { text in
                guard let value = Double(text), minimum > 0 ? value >= minimum : value > 0, value <= maximum else { return nil }
                return .milliseconds(Int64(value * 1000))
            })
    }
}

/// Settings `sluice serve` and `sluice worker` share.
enum CommonSettings {
    static let logLevel = CommandSetting.text(
        "--log-level", "SLUICE_LOG_LEVEL", default: "info", "trace, debug, info (one access-log line per request), notice, warning, error.")
}

/// Redis' settings, the same for every command that talks to Redis (``RedisOptions``).
enum RedisSettings {
    static let url = CommandSetting.text(
        "--redis", "SLUICE_REDIS_URL", default: "redis://127.0.0.1:6379",
        "Redis URL: redis[s]://[user:password@]host:port[/db] (rediss: TLS) or unix:///path; in cluster mode the seed nodes, comma-separated.")
    static let mode = CommandSetting<RedisConfiguration.Mode>(
        flag: "--redis-mode", variable: "SLUICE_REDIS_MODE", defaultValue: .single, defaultText: "single",
        summary: "single (one Redis) or cluster (a Redis Cluster).", rule: "single or cluster", parse: RedisConfiguration.Mode.init(rawValue:))
    static let connections = CommandSetting.count(
        "--redis-connections", nil, default: nil, defaultText: "1 for serve and worker, 2 for bench-limiter", 1...64,
        "Connections to Redis, each pipelining all concurrent commands.")
    static let timeout = CommandSetting.count("--redis-timeout-ms", nil, default: 1000, 1...600_000, "Redis command timeout in milliseconds.")
}

/// `sluice serve`'s settings (besides Redis' and the secrets).
enum ServeSettings {
    static let host = CommandSetting.text("--host", "SLUICE_HOST", default: "127.0.0.1", "Address to listen on.")
    static let port = CommandSetting.port("--port", "SLUICE_PORT", default: 8080, "Port to listen on.")
    static let readTimeout = CommandSetting.seconds(
        "--read-timeout", "SLUICE_READ_TIMEOUT", default: 10,
        "Seconds a client may take to send a whole request (headers and body), and a new connection may stay silent.")
    static let idleTimeout = CommandSetting.seconds(
        "--idle-timeout", "SLUICE_IDLE_TIMEOUT", default: 60, "Seconds a keep-alive connection may sit idle between requests.")
    static let maxConnections = CommandSetting.count(
        "--max-connections", "SLUICE_MAX_CONNECTIONS", default: nil, defaultText: "the open-file limit less 128", 1...Int.max,
        "Client connections open at once; more are closed on arrival.")
    static let tlsCert = CommandSetting.text(
        "--tls-cert", "SLUICE_TLS_CERT", "PEM certificate chain to serve HTTPS with (with --tls-key); reloaded when it changes and on SIGHUP.")
    static let tlsKey = CommandSetting.text("--tls-key", "SLUICE_TLS_KEY", "PEM private key of --tls-cert.")
    static let modelRetention = CommandSetting.count(
        "--model-retention", "SLUICE_MODEL_RETENTION", default: 20, 1...Int.max, "Stored model versions to keep besides the active and the previous one.")
    static let trainingRate = CommandSetting.count(
        "--training-rate", "SLUICE_TRAINING_RATE", default: 12, 1...Int.max, "Model uploads per key per hour, on top of the key's own limits.")
    static let trainingBurst = CommandSetting.count(
        "--training-burst", "SLUICE_TRAINING_BURST", default: 3, 1...Int.max, "Model uploads per key at once before the hourly rate applies.")
    static let authFailureRate = CommandSetting.count(
        "--auth-failure-rate", "SLUICE_AUTH_FAILURE_RATE", default: 30, 1...Int.max, "Failed authentications per client address per minute before 429.")
    static let authFailureBurst = CommandSetting.count(
        "--auth-failure-burst", "SLUICE_AUTH_FAILURE_BURST", default: 10, 1...Int.max,
        "Failed authentications per client address at once before the per-minute rate applies.")
    static let localDenyEntries = CommandSetting.count(
        "--local-deny-entries", "SLUICE_LOCAL_DENY_ENTRIES", default: 100_000, 0...10_000_000,
        "Limiter keys whose state bounds each replica keeps to deny provably-over-limit requests without a Redis call (LRU; 0 turns it off).")
    static let inFlightLease = CommandSetting.seconds(
        "--in-flight-lease", "SLUICE_IN_FLIGHT_LEASE", default: 60,
        "Seconds a max_in_flight lease lasts if its replica dies holding it (plus a delay key's max_delay; must exceed the longest request).")
}

/// `sluice worker`'s settings (besides Redis' and the signing keys).
enum WorkerSettings {
    static let host = CommandSetting.text(
        "--host", "SLUICE_WORKER_HOST", default: "127.0.0.1", "Address of the /healthz and /metrics listener (unauthenticated; keep it private).")
    static let port = CommandSetting.port("--port", "SLUICE_WORKER_PORT", default: 9090, "Port of the /healthz and /metrics listener.")
    static let visibilityTimeout = CommandSetting.seconds(
        "--visibility-timeout", nil, default: 30, minimum: 0.1, maximum: 3600,
        "Seconds after which a job claimed by a worker that vanished is given to another.")
    static let resultTtl = CommandSetting.count(
        "--result-ttl", nil, default: 3600, 1...Int.max, "Seconds a job's result stays readable at GET /v1/jobs/{id}.")
    static let batchSize = CommandSetting.count("--batch-size", nil, default: 32, 1...1000, "Most jobs claimed at once.")
}

/// Runs `body`, which reads the configuration; a bad setting stops the process with exit status
/// 78 (EX_CONFIG) and a message that names the setting, never a secret's value.
func refusingToStart<T>(_ logger: Logger, _ body: () async throws -> T) async throws -> T {
    do {
        return try await body()
    } catch {
        logger.critical("refusing to start: \(error)")
        throw ExitCode(78)  // EX_CONFIG
    }
}

/// Log lines to standard error at `levelName`.
func bootstrapLogging(_ levelName: String, label: String) throws -> Logger {
    guard let level = Logger.Level(rawValue: levelName) else {
        throw ValidationError("unknown log level '\(levelName)' (--log-level, SLUICE_LOG_LEVEL: trace, debug, info, notice, warning, error)")
    }
    LoggingSystem.bootstrap { label in
        var handler = StreamLogHandler.standardError(label: label)
        handler.logLevel = level
        return handler
    }
    return Logger(label: label)
}
