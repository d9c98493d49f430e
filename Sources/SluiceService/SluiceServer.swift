import Foundation
import Hummingbird
import Logging
import ServiceLifecycle
import SluiceAuth
import SluiceLimiter
import SluiceModel
import SluiceQueue
import SluiceRedis
import SluiceSecrets

/// One stateless replica of the prediction API: everything it shares with other replicas lives
/// in Redis (keys, limits, models, jobs), so any number of them can run behind a load balancer.
///
/// Only wires parts together: ``Admission`` decides what becomes of each request, the route
/// collections (`Routes/`) answer them, the services (`Services/`) run beside the HTTP server in
/// one service group.
public struct SluiceServer: Sendable {
    let configuration: ServiceConfiguration
    let logger: Logger
    let redis: RedisClient
    let metrics: ServiceMetrics
    let keys: KeyStore
    let tenants: TenantStore
    let authenticator: KeyAuthenticator
    let limits: AdmissionLimits
    let jobs: PartitionedJobQueue
    let models: ModelHolder

    public init(configuration: ServiceConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
        let redis = RedisClient(configuration: configuration.redis, logger: logger)
        self.redis = redis
        let metrics = ServiceMetrics(redis: redis)
        self.metrics = metrics
        keys = KeyStore(client: redis)
        authenticator = KeyAuthenticator(store: keys, bootstrapAdminKey: configuration.adminKey, cacheLifetime: configuration.keyCacheLifetime)
        let tenants = TenantStore(client: redis)
        self.tenants = tenants
        limits = AdmissionLimits(
            limiter: RateLimiter(
                client: redis, localDenial: configuration.localDenyEntries > 0 ? LocalDenial(capacity: configuration.localDenyEntries) : nil),
            tenants: TenantDirectory(store: tenants, lifetime: configuration.keyCacheLifetime),
            usage: UsageMeter(),
            failedAuthPolicy: configuration.failedAuthPolicy,
            trainingPolicy: configuration.trainingPolicy,
            breaker: CircuitBreaker { state in
                metrics.setLimiterMode(state == .open ? .local : .redis)
                logger.warning(state == .open ? "Redis keeps failing: degraded mode (only on_redis_failure=local keys are served)" : "Redis answers again: degraded mode over")
            },
            degraded: DegradedLimiter(),
            heartbeat: ReplicaHeartbeat(id: Self.replicaID),
            concurrency: ConcurrencyLimiter(client: redis),
            inFlightLease: configuration.inFlightLease
        )
        jobs = PartitionedJobQueue(client: redis)
        models = ModelHolder(
            registry: ModelRegistry(client: redis, signer: configuration.signer), logger: logger, onEvent: metrics.process.record)
    }

    /// What every route admits its requests with.
    var admission: Admission {
        Admission(
            authenticator: authenticator, trustedProxies: configuration.trustedProxies, limits: limits, metrics: metrics,
            traced: configuration.tracing != nil)
    }

    /// Host, pid and a random part: names this process in Redis (model bootstrap, heartbeats).
    /// The random part keeps two holders apart even if a restarted process gets the same pid.
    static let replicaID = "\(ProcessInfo.processInfo.hostName)-\(ProcessInfo.processInfo.processIdentifier)-\(UInt64.random(in: .min ... .max))"

    /// Every route, behind the request log and the `405` for a known path with another method.
    func router() -> Router<SluiceRequestContext> {
        let router = Router(context: SluiceRequestContext.self, options: .autoGenerateHeadEndpoints)
        // A server span per request, continuing an incoming `traceparent`.
        if configuration.tracing != nil { router.add(middleware: TracingMiddleware()) }
        router.add(middleware: RequestLogMiddleware(metrics: metrics))
        let admission = admission
        router.addRoutes(
            OperationalRoutes(
                admission: admission, redis: redis, breaker: limits.breaker, authenticator: authenticator, models: models, metrics: metrics
            ).collection)
        router.addRoutes(
            PredictionRoutes(admission: admission, models: models, idempotency: IdempotencyStore(client: redis), jobs: jobs, metrics: metrics)
                .collection)
        router.addRoutes(
            ModelRoutes(
                admission: admission, models: models, training: TrainingSlot(), activationGate: configuration.activationGate,
                retention: configuration.modelRetention, metrics: metrics
            ).collection)
        router.addRoutes(
            KeyRoutes(admission: admission, keys: keys, tenants: tenants, authenticator: authenticator, limiter: limits.limiter, metrics: metrics)
                .collection)
        router.addRoutes(
            UsageRoutes(admission: admission, keys: keys, tenants: tenants, reader: UsageReader(client: redis), metrics: metrics).collection)
        router.addRoutes(TenantRoutes(admission: admission, tenants: tenants, keys: keys, authenticator: authenticator, metrics: metrics).collection)
        router.addRoutes(JobRoutes(admission: admission, jobs: jobs, metrics: metrics).collection)
        router.add(middleware: MethodNotAllowedMiddleware(routes: router.routes))
        return router
    }

    /// What runs beside the HTTP server: the model, pub/sub, the heartbeat, the charge-back.
    var services: [any Service] {
        (configuration.tracing.map { [$0] } ?? []) + [
            ModelService(models: models, owner: Self.replicaID, logger: logger),
            ChangeSubscriber(
                redis: configuration.redis, authenticator: authenticator, tenants: limits.tenants, localDenial: limits.limiter.localDenial,
                models: models, logger: logger),
            HeartbeatService(heartbeat: limits.heartbeat, redis: redis, breaker: limits.breaker, logger: logger),
            ChargeBackService(degraded: limits.degraded, limiter: limits.limiter, breaker: limits.breaker, logger: logger),
            UsageFlushService(usage: limits.usage, redis: redis, logger: logger),
            SecretWatcher(
                secrets: reloadableSecrets, interval: configuration.secretsPollInterval, logger: logger,
                onOutcome: { metrics.process.recordSecretReload(secret: $0, outcome: $1.rawValue) }),
        ]
    }

    /// The secrets read from files, taken again when a secrets manager rewrites them: Redis'
    /// password and TLS files, the signing keys, the bootstrap admin key, the HTTPS certificate.
    var reloadableSecrets: [ReloadableSecret] {
        let source = configuration.secrets
        var secrets = redis.reloadableSecrets(from: source)
        if let signing = configuration.signer.reloadable(from: source) { secrets.append(signing) }
        if let file = source.file(of: "SLUICE_ADMIN_KEY") {
            let authenticator = authenticator
            secrets.append(
                ReloadableSecret(name: "SLUICE_ADMIN_KEY", files: [file]) { () throws(SecretReloadError) in
                    do throws(SecretError) {
                        authenticator.rotateBootstrapAdminKey(to: try ServiceConfiguration.adminKey(source))
                    } catch {
                        throw SecretReloadError(error)
                    }
                })
        }
        if let tls = configuration.tls {
            secrets.append(
                ReloadableSecret(name: "SLUICE_TLS_CERT", files: [tls.certificatePath, tls.keyPath]) { () throws(SecretReloadError) in
                    do {
                        try tls.reload()
                    } catch {
                        throw SecretReloadError(.invalid, "\(error)")
                    }
                })
        }
        return secrets
    }

    /// The replica as a Hummingbird application: the router, the guarded HTTP/1.1 (or TLS)
    /// server, and the services.
    func application() -> some ApplicationProtocol {
        Application(
            router: router(),
            server: GuardedHTTP1Channel.builder(limits: configuration.connections, tls: configuration.tls, metrics: metrics, logger: logger),
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "sluice"),
            services: services,
            logger: logger
        )
    }

    /// Serves until SIGTERM or SIGINT, then drains in-flight requests and returns.
    public func run() async throws {
        defer { redis.shutdown() }
        try await application().runService()
    }
}
