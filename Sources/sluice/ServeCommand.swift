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
              SLUICE_MODEL_SIGNING_KEY  HMAC-SHA256 key for model artifacts (>= 32 random bytes)
            Optional: REDIS_PASSWORD(_FILE), SLUICE_TRUSTED_PROXIES (comma-separated peer addresses
            whose X-Forwarded-For is believed).
            """
    )

    @Option(help: "Address to listen on. Env: SLUICE_HOST.")
    var host: String?

    @Option(help: "Port to listen on. Env: SLUICE_PORT.")
    var port: Int?

    @OptionGroup var redis: RedisOptions

    @Option(help: "trace, debug, info (one access-log line per request), notice, warning, error. Env: SLUICE_LOG_LEVEL.")
    var logLevel: String?

    func run() async throws {
        let secrets = SecretSource()
        let logger = try bootstrapLogging(logLevel ?? secrets.environment["SLUICE_LOG_LEVEL"], label: "sluice")
        let environment = secrets.environment
        let configuration: ServiceConfiguration
        do {
            configuration = try ServiceConfiguration(
                host: host ?? environment["SLUICE_HOST"] ?? "127.0.0.1",
                port: try port ?? secrets.port("SLUICE_PORT") ?? 8080,
                redis: try redis.configuration(secrets: secrets, connections: 1),
                secrets: secrets
            )
        } catch {
            // Refuse to start unsafely; the message names the variable, never its value.
            logger.critical("refusing to start: \(error)")
            throw ExitCode(78)  // EX_CONFIG
        }
        logger.info("starting", metadata: ["listen": "\(configuration.host):\(configuration.port)", "redis": "\(configuration.redis)"])
        try await SluiceServer(configuration: configuration, logger: logger).run()
    }
}

/// `sluice keygen`: prints a new API key, or a signing key, from the system CSPRNG.
struct KeygenCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keygen", abstract: "Print a new random API key (for SLUICE_ADMIN_KEY) or, with --signing, a signing key.")

    @Flag(help: "Print 64 hex characters (256 bits) for SLUICE_MODEL_SIGNING_KEY instead.")
    var signing = false

    func run() {
        if signing {
            var generator = SystemRandomNumberGenerator()
            print((0..<4).map { _ in String(format: "%016llx", generator.next() as UInt64) }.joined())
        } else {
            print(APIKey.generate().revealed)
        }
    }
}
