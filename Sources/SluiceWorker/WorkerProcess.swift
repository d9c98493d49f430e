import Hummingbird
import Logging
import ServiceLifecycle
import SluiceModel
import SluiceQueue
import SluiceRedis
import SluiceSecrets

/// A whole `sluice worker` process: the ``QueueWorker`` plus a small HTTP listener for
/// `GET /healthz` and `GET /metrics` (Prometheus), under one service group that turns SIGTERM or
/// SIGINT into a graceful shutdown: stop claiming, finish the jobs in hand, exit 0.
public struct WorkerProcess: Sendable {
    public var redis: RedisConfiguration
    public var signer: ArtifactSigner
    public var worker: QueueWorker.Configuration
    /// Where `/healthz` and `/metrics` listen (unauthenticated: keep it on a private address).
    public var host: String
    public var port: Int
    /// Where the secrets came from: their `*_FILE`s are watched and taken again when rewritten.
    public var secrets: SecretSource
    public var secretsPollInterval: Duration
    /// The span exporter when tracing is on: started first, stopped last (after the last job).
    public var tracing: (any Service)?

    public init(
        redis: RedisConfiguration, signer: ArtifactSigner, worker: QueueWorker.Configuration, host: String, port: Int,
        secrets: SecretSource = SecretSource(environment: [:]), secretsPollInterval: Duration = .seconds(5)
    ) {
        self.redis = redis
        self.signer = signer
        self.worker = worker
        self.host = host
        self.port = port
        self.secrets = secrets
        self.secretsPollInterval = secretsPollInterval
    }

    public func run(logger: Logger) async throws {
        let client = RedisClient(configuration: redis, logger: logger)
        defer { client.shutdown() }
        let metrics = WorkerMetrics(redis: client)
        let process = metrics.process
        let models = ModelHolder(registry: ModelRegistry(client: client, signer: signer), logger: logger, onEvent: process.record)
        let worker = QueueWorker(queue: PartitionedJobQueue(client: client), models: models, configuration: worker, metrics: metrics, logger: logger)

        let router = Router()
        router.get("/healthz") { _, _ in
            Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: #"{"status":"ok"}"#)))
        }
        router.get("/metrics") { _, _ in
            Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                body: .init(byteBuffer: ByteBuffer(bytes: metrics.exposition())))
        }
        let app = Application(router: router, configuration: .init(address: .hostname(host, port: port), serverName: "sluice-worker"), logger: logger)

        var reloadable = client.reloadableSecrets(from: secrets)
        if let signing = signer.reloadable(from: secrets) { reloadable.append(signing) }
        let watcher = SecretWatcher(
            secrets: reloadable, interval: secretsPollInterval, logger: logger,
            onOutcome: { process.recordSecretReload(secret: $0, outcome: $1.rawValue) })

        // Services shut down in reverse order: the worker drains first, then the listener.
        let group = ServiceGroup(
            configuration: .init(
                services: (tracing.map { [ServiceGroupConfiguration.ServiceConfiguration(service: $0)] } ?? []) + [
                    .init(service: watcher),
                    .init(service: app),
                    .init(service: worker, successTerminationBehavior: .gracefullyShutdownGroup),
                ],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
        try await group.run()
    }
}
