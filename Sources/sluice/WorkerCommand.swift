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

    @Option(help: WorkerSettings.host.help) var host: String?
    @Option(help: WorkerSettings.port.help) var port: String?
    @OptionGroup var redis: RedisOptions
    @Option(help: WorkerSettings.visibilityTimeout.help) var visibilityTimeout: String?
    @Option(help: WorkerSettings.resultTtl.help) var resultTtl: String?
    @Option(help: WorkerSettings.batchSize.help) var batchSize: String?
    @Option(help: CommonSettings.logLevel.help) var logLevel: String?

    func run() async throws {
        let secrets = SecretSource()
        let environment = secrets.environment
        let logger = try bootstrapLogging(try CommonSettings.logLevel.value(logLevel, environment), label: "sluice.worker")
        let process = try await refusingToStart(logger) {
            var redisConfiguration = try redis.configuration(secrets: secrets, connections: 1)
            let tracing = try OpenTelemetryTracing.start(serviceName: "sluice-worker", environment: environment)
            redisConfiguration.traced = tracing != nil
            try await RedisOptions.checkCluster(redisConfiguration)
            var worker = QueueWorker.Configuration()
            worker.visibilityTimeout = try WorkerSettings.visibilityTimeout.value(visibilityTimeout, environment)
            worker.resultLifetime = .seconds(try WorkerSettings.resultTtl.value(resultTtl, environment) as Int)
            worker.batchSize = try WorkerSettings.batchSize.value(batchSize, environment)
            var process = WorkerProcess(
                redis: redisConfiguration,
                signer: try ArtifactSigner(secrets: secrets),
                worker: worker,
                host: try WorkerSettings.host.value(host, environment),
                port: try WorkerSettings.port.value(port, environment),
                secrets: secrets, secretsPollInterval: try secrets.pollInterval())
            process.tracing = tracing
            return process
        }
        try await process.run(logger: logger)
    }
}
