import ArgumentParser
import Foundation
import Logging
import SluiceAuth
import SluiceSecrets
import SluiceService

/// `sluice serve`: one stateless replica of the prediction API.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve the prediction API (one stateless replica; run as many as you like).",
        discussion: """
            Required secrets, each from the variable or from a file named by <NAME>_FILE:
              SLUICE_ADMIN_KEY          bootstrap admin API key (sk_<id>_<secret>, see `sluice keygen`)
              SLUICE_MODEL_SIGNING_KEYS HMAC-SHA256 keyring for model artifacts: "id:key" entries
                                        (>= 32 random bytes each), the first signs; or
                                        SLUICE_MODEL_SIGNING_KEY (one key, id "default")
            Optional: REDIS_PASSWORD(_FILE), SLUICE_TRUSTED_PROXIES (comma-separated peer addresses
            whose X-Forwarded-For is believed). Secret files (and --tls-cert/--tls-key) are read again
            every SLUICE_SECRETS_POLL_INTERVAL seconds (default 5) and on SIGHUP; a changed one is used
            without a restart, a bad one refused (the one in use kept).
            """
    )

    @Option(help: "Address to listen on. Env: SLUICE_HOST.")
    var host: String?

    @Option(help: "Port to listen on. Env: SLUICE_PORT.")
    var port: Int?

    @OptionGroup var redis: RedisOptions

    @Option(help: "Seconds a client may take to send a whole request (headers and body), and a new connection may stay silent. Env: SLUICE_READ_TIMEOUT.")
    var readTimeout: Double?

    @Option(help: "Seconds a keep-alive connection may sit idle between requests. Env: SLUICE_IDLE_TIMEOUT.")
    var idleTimeout: Double?

    @Option(help: "Client connections open at once; more are closed on arrival (default: the open-file limit less 128). Env: SLUICE_MAX_CONNECTIONS.")
    var maxConnections: Int?

    @Option(help: "PEM certificate chain to serve HTTPS with (with --tls-key); reloaded when it changes and on SIGHUP. Env: SLUICE_TLS_CERT.")
    var tlsCert: String?

    @Option(help: "PEM private key of --tls-cert. Env: SLUICE_TLS_KEY.")
    var tlsKey: String?

    @Option(help: "Stored model versions to keep besides the active and the previous one (default 20). Env: SLUICE_MODEL_RETENTION.")
    var modelRetention: Int?

    @Option(help: "Model uploads per key per hour, on top of the key's own limits (default 12). Env: SLUICE_TRAINING_RATE.")
    var trainingRate: Int?

    @Option(help: "Model uploads per key at once before the hourly rate applies (default 3). Env: SLUICE_TRAINING_BURST.")
    var trainingBurst: Int?

    @Option(help: "Failed authentications per client address per minute before 429 (default 30). Env: SLUICE_AUTH_FAILURE_RATE.")
    var authFailureRate: Int?

    @Option(help: "Failed authentications per client address at once before the per-minute rate applies (default 10). Env: SLUICE_AUTH_FAILURE_BURST.")
    var authFailureBurst: Int?

    @Option(help: "Limiter keys whose state bounds each replica keeps to deny provably-over-limit requests without a Redis call (LRU; default 100000, 0 turns it off). Env: SLUICE_LOCAL_DENY_ENTRIES.")
    var localDenyEntries: Int?

    @Option(help: "Seconds a max_in_flight lease lasts if its replica dies holding it (plus a delay key's max_delay; default 60; must exceed the longest request). Env: SLUICE_IN_FLIGHT_LEASE.")
    var inFlightLease: Double?

    @Option(help: "trace, debug, info (one access-log line per request), notice, warning, error. Env: SLUICE_LOG_LEVEL.")
    var logLevel: String?

    func run() async throws {
        let secrets = SecretSource()
        let logger = try bootstrapLogging(logLevel ?? secrets.environment["SLUICE_LOG_LEVEL"], label: "sluice")
        let environment = secrets.environment
        var configuration: ServiceConfiguration
        do {
            configuration = try ServiceConfiguration(
                host: host ?? environment["SLUICE_HOST"] ?? "127.0.0.1",
                port: try port ?? secrets.port("SLUICE_PORT") ?? 8080,
                redis: try redis.configuration(secrets: secrets, connections: 1),
                secrets: secrets
            )
            try await RedisOptions.checkCluster(configuration.redis)
            configuration.connections = ConnectionLimits(
                readTimeout: try seconds(readTimeout, "SLUICE_READ_TIMEOUT", environment) ?? .seconds(10),
                idleTimeout: try seconds(idleTimeout, "SLUICE_IDLE_TIMEOUT", environment) ?? .seconds(60),
                maxConnections: try positive(maxConnections, "SLUICE_MAX_CONNECTIONS", environment))
            switch (tlsCert ?? environment["SLUICE_TLS_CERT"], tlsKey ?? environment["SLUICE_TLS_KEY"]) {
            case (nil, nil): break
            case (let certificate?, let key?):
                do {
                    configuration.tls = try ServerTLS(certificatePath: certificate, keyPath: key)
                } catch {
                    throw ValidationError("--tls-cert/--tls-key cannot be used: \(error)")
                }
            default: throw ValidationError("--tls-cert and --tls-key go together")
            }
            configuration.modelRetention = try positive(modelRetention, "SLUICE_MODEL_RETENTION", environment) ?? 20
            configuration.trainingPolicy = ServiceConfiguration.trainingPolicy(
                perHour: try positive(trainingRate, "SLUICE_TRAINING_RATE", environment) ?? 12,
                burst: try positive(trainingBurst, "SLUICE_TRAINING_BURST", environment) ?? 3)
            configuration.failedAuthPolicy = ServiceConfiguration.failedAuthPolicy(
                perMinute: try positive(authFailureRate, "SLUICE_AUTH_FAILURE_RATE", environment) ?? 30,
                burst: try positive(authFailureBurst, "SLUICE_AUTH_FAILURE_BURST", environment) ?? 10)
            configuration.inFlightLease = try seconds(inFlightLease, "SLUICE_IN_FLIGHT_LEASE", environment) ?? .seconds(60)
            configuration.localDenyEntries = try count(localDenyEntries, "SLUICE_LOCAL_DENY_ENTRIES", environment, maximum: 10_000_000) ?? 100_000
            configuration.tracing = try OpenTelemetryTracing.start(serviceName: "sluice", environment: environment)
            configuration.redis.traced = configuration.tracing != nil
        } catch {
            // Refuse to start unsafely; the message names the variable, never its value.
            logger.critical("refusing to start: \(error)")
            throw ExitCode(78)  // EX_CONFIG
        }
        logger.info("starting", metadata: ["listen": "\(configuration.host):\(configuration.port)", "redis": "\(configuration.redis)"])
        try await SluiceServer(configuration: configuration, logger: logger).run()
    }
}

/// A duration option: the flag, else the environment variable; positive seconds or a clear error.
private func seconds(_ flag: Double?, _ variable: String, _ environment: [String: String]) throws -> Duration? {
    guard let value = try flag ?? environment[variable].map({ text throws -> Double in
        guard let value = Double(text) else { throw ValidationError("\(variable) must be a number of seconds, not \"\(text)\"") }
        return value
    }) else { return nil }
    guard value > 0, value <= 86_400 else { throw ValidationError("\(variable) must be more than 0 and at most 86400 seconds, not \(value)") }
    return .milliseconds(Int(value * 1000))
}

/// A count option: the flag, else the environment variable; a positive integer or a clear error.
private func positive(_ flag: Int?, _ variable: String, _ environment: [String: String]) throws -> Int? {
    guard let value = try flag ?? environment[variable].map({ text throws -> Int in
        guard let value = Int(text) else { throw ValidationError("\(variable) must be a whole number, not \"\(text)\"") }
        return value
    }) else { return nil }
    guard value > 0 else { throw ValidationError("\(variable) must be positive, not \(value)") }
    return value
}

/// A count that may be 0: the flag, else the environment variable; within 0...maximum or a clear error.
private func count(_ flag: Int?, _ variable: String, _ environment: [String: String], maximum: Int) throws -> Int? {
    guard let value = try flag ?? environment[variable].map({ text throws -> Int in
        guard let value = Int(text) else { throw ValidationError("\(variable) must be a whole number, not \"\(text)\"") }
        return value
    }) else { return nil }
    guard (0...maximum).contains(value) else { throw ValidationError("\(variable) must be from 0 to \(maximum), not \(value)") }
    return value
}
