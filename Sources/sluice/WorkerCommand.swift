import ArgumentParser
import Foundation
import Logging
import SluiceModel
import SluiceSecrets
import SluiceWorker

/// `sluice worker`: runs queued predictions when their slot comes.
struct WorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker",
        abstract: "Run queued (overflow \"queue\") predictions when their rate-limit slot comes; run as many as you like.",
        discussion: """
            Required secret, from the variable or from a file named by <NAME>_FILE:
              SLUICE_MODEL_SIGNING_KEYS the replicas' signing keyring ("id:key" entries, the first active),
                                        or SLUICE_MODEL_SIGNING_KEY (one key): a model is verified before it runs
            Optional: REDIS_PASSWORD(_FILE). Secret files are read again every SLUICE_SECRETS_POLL_INTERVAL
            seconds (default 5) and on SIGHUP. SIGTERM: stop claiming, finish the jobs in hand, exit 0.
            """
    )

    @Option(help: "Address of the /healthz and /metrics listener (unauthenticated; keep it private). Env: SLUICE_WORKER_HOST.")
    var host: String?

    @Option(help: "Port of the /healthz and /metrics listener. Env: SLUICE_WORKER_PORT.")
    var port: Int?

    @OptionGroup var redis: RedisOptions

    @Option(help: "Seconds after which a job claimed by a worker that vanished is given to another.")
    var visibilityTimeout: Double = 30

    @Option(help: "Seconds a job's result stays readable at GET /v1/jobs/{id}.")
    var resultTtl: Int = 3600

    @Option(help: "Most jobs claimed at once.")
    var batchSize: Int = 32

    @Option(help: "trace, debug, info, notice, warning, error. Env: SLUICE_LOG_LEVEL.")
    var logLevel: String?

    func validate() throws {
        guard visibilityTimeout >= 0.1, visibilityTimeout <= 3600 else { throw ValidationError("--visibility-timeout must be 0.1…3600 seconds") }
        guard resultTtl >= 1 else { throw ValidationError("--result-ttl must be at least 1 second") }
        guard (1...1000).contains(batchSize) else { throw ValidationError("--batch-size must be 1…1000") }
    }

    func run() async throws {
        let secrets = SecretSource()
        let logger = try bootstrapLogging(logLevel ?? secrets.environment["SLUICE_LOG_LEVEL"], label: "sluice.worker")
        var process: WorkerProcess
        do {
            var redisConfiguration = try redis.configuration(secrets: secrets, connections: 1)
            let tracing = try OpenTelemetryTracing.start(serviceName: "sluice-worker", environment: secrets.environment)
            redisConfiguration.traced = tracing != nil
            try await RedisOptions.checkCluster(redisConfiguration)
            var worker = QueueWorker.Configuration()
            worker.visibilityTimeout = .milliseconds(Int64(visibilityTimeout * 1000))
            worker.resultLifetime = .seconds(resultTtl)
            worker.batchSize = batchSize
            process = WorkerProcess(
                redis: redisConfiguration,
                signer: try ArtifactSigner(secrets: secrets),
                worker: worker,
                host: host ?? secrets.environment["SLUICE_WORKER_HOST"] ?? "127.0.0.1",
                port: try port ?? secrets.port("SLUICE_WORKER_PORT") ?? 9090,
                secrets: secrets, secretsPollInterval: try secrets.pollInterval())
            process.tracing = tracing
        } catch {
            logger.critical("refusing to start: \(error)")
            throw ExitCode(78)  // EX_CONFIG
        }
        try await process.run(logger: logger)
    }
}

/// Log lines to standard error at `levelName` (default info).
func bootstrapLogging(_ levelName: String?, label: String) throws -> Logger {
    guard let level = Logger.Level(rawValue: levelName ?? "info") else {
        throw ValidationError("unknown log level '\(levelName ?? "")'")
    }
    LoggingSystem.bootstrap { label in
        var handler = StreamLogHandler.standardError(label: label)
        handler.logLevel = level
        return handler
    }
    return Logger(label: label)
}

extension SecretSource {
    /// A port number from the environment variable `name`, if set.
    func port(_ name: String) throws(SecretError) -> Int? {
        guard let value = environment[name] else { return nil }
        guard let port = Int(value), (1...65535).contains(port) else { throw .invalid(name: name, reason: "must be a port number") }
        return port
    }
}
