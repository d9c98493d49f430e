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

    @Option(help: ServeSettings.host.help) var host: String?
    @Option(help: ServeSettings.port.help) var port: String?
    @OptionGroup var redis: RedisOptions
    @Option(help: ServeSettings.readTimeout.help) var readTimeout: String?
    @Option(help: ServeSettings.idleTimeout.help) var idleTimeout: String?
    @Option(help: ServeSettings.maxConnections.help) var maxConnections: String?
    @Option(help: ServeSettings.tlsCert.help) var tlsCert: String?
    @Option(help: ServeSettings.tlsKey.help) var tlsKey: String?
    @Option(help: ServeSettings.modelRetention.help) var modelRetention: String?
    @Option(help: ServeSettings.trainingRate.help) var trainingRate: String?
    @Option(help: ServeSettings.trainingBurst.help) var trainingBurst: String?
    @Option(help: ServeSettings.authFailureRate.help) var authFailureRate: String?
    @Option(help: ServeSettings.authFailureBurst.help) var authFailureBurst: String?
    @Option(help: ServeSettings.localDenyEntries.help) var localDenyEntries: String?
    @Option(help: ServeSettings.inFlightLease.help) var inFlightLease: String?
    @Option(help: CommonSettings.logLevel.help) var logLevel: String?

    func run() async throws {
        let secrets = SecretSource()
        let environment = secrets.environment
        let logger = try bootstrapLogging(try CommonSettings.logLevel.value(logLevel, environment), label: "sluice")
        let configuration = try await refusingToStart(logger) {
            var configuration = try ServiceConfiguration(
                host: try ServeSettings.host.value(host, environment),
                port: try ServeSettings.port.value(port, environment),
                redis: try redis.configuration(secrets: secrets, connections: 1),
                secrets: secrets
            )
            try await RedisOptions.checkCluster(configuration.redis)
            configuration.connections = ConnectionLimits(
                readTimeout: try ServeSettings.readTimeout.value(readTimeout, environment),
                idleTimeout: try ServeSettings.idleTimeout.value(idleTimeout, environment),
                maxConnections: try ServeSettings.maxConnections.value(maxConnections, environment))
            let certificate: String? = try ServeSettings.tlsCert.value(tlsCert, environment)
            let key: String? = try ServeSettings.tlsKey.value(tlsKey, environment)
            switch (certificate, key) {
            case (nil, nil): break
            case (let certificate?, let key?):
                do {
                    configuration.tls = try ServerTLS(certificatePath: certificate, keyPath: key)
                } catch {
                    throw ValidationError("--tls-cert/--tls-key cannot be used: \(error)")
                }
            default: throw ValidationError("--tls-cert and --tls-key go together")
            }
            configuration.modelRetention = try ServeSettings.modelRetention.value(modelRetention, environment)
            configuration.trainingPolicy = ServiceConfiguration.trainingPolicy(
                perHour: try ServeSettings.trainingRate.value(trainingRate, environment),
                burst: try ServeSettings.trainingBurst.value(trainingBurst, environment))
            configuration.failedAuthPolicy = ServiceConfiguration.failedAuthPolicy(
                perMinute: try ServeSettings.authFailureRate.value(authFailureRate, environment),
                burst: try ServeSettings.authFailureBurst.value(authFailureBurst, environment))
            configuration.inFlightLease = try ServeSettings.inFlightLease.value(inFlightLease, environment)
            configuration.localDenyEntries = try ServeSettings.localDenyEntries.value(localDenyEntries, environment)
            configuration.tracing = try OpenTelemetryTracing.start(serviceName: "sluice", environment: environment)
            configuration.redis.traced = configuration.tracing != nil
            return configuration
        }
        logger.info("starting", metadata: ["listen": "\(configuration.host):\(configuration.port)", "redis": "\(configuration.redis)"])
        try await SluiceServer(configuration: configuration, logger: logger).run()
    }
}
