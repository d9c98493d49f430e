import Foundation
import Hummingbird
import Logging
import SluiceAuth
import SluiceLimiter
import SluiceModel
import SluiceQueue
import SluiceRedis

/// One stateless replica of the prediction API: everything it shares with other replicas lives
/// in Redis (keys, limits, models), so any number of them can run behind a load balancer.
public struct SluiceServer: Sendable {
    let configuration: ServiceConfiguration
    let logger: Logger
    let redis: RedisClient
    let keys: KeyStore
    let access: AccessControl
    let models: ModelHolder
    let jobs: PartitionedJobQueue
    let metrics: ServiceMetrics
    let training = TrainingSlot()
    let idempotency: IdempotencyStore

    public init(configuration: ServiceConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
        self.redis = RedisClient(configuration: configuration.redis, logger: logger)
        self.metrics = ServiceMetrics(redis: redis)
        self.keys = KeyStore(client: redis)
        let metrics = self.metrics
        self.access = AccessControl(
            authenticator: KeyAuthenticator(store: keys, bootstrapAdminKey: configuration.adminKey, cacheLifetime: configuration.keyCacheLifetime),
            limiter: RateLimiter(
                client: redis, localDenial: configuration.localDenyEntries > 0 ? LocalDenial(capacity: configuration.localDenyEntries) : nil),
            trustedProxies: configuration.trustedProxies,
            metrics: metrics,
            failedAuthPolicy: configuration.failedAuthPolicy,
            breaker: CircuitBreaker { state in
                metrics.setLimiterMode(state == .open ? .local : .redis)
                logger.warning(state == .open ? "Redis keeps failing: degraded mode (only on_redis_failure=local keys are served)" : "Redis answers again: degraded mode over")
            },
            degraded: DegradedLimiter(),
            heartbeat: ReplicaHeartbeat(id: Self.replicaID),
            concurrency: ConcurrencyLimiter(client: redis),
            inFlightLease: configuration.inFlightLease
        )
        let process = metrics.process
        self.models = ModelHolder(registry: ModelRegistry(client: redis, signer: configuration.signer), logger: logger, onEvent: process.record)
        self.jobs = PartitionedJobQueue(client: redis)
        self.idempotency = IdempotencyStore(client: redis)
    }

    /// Serves until SIGTERM or SIGINT, then drains in-flight requests and returns.
    public func run() async throws {
        let router = Router(context: SluiceRequestContext.self, options: .autoGenerateHeadEndpoints)
        router.add(middleware: RequestLogMiddleware(metrics: metrics))
        addOperationalRoutes(to: router)
        addPredictionRoutes(to: router)
        addModelRoutes(to: router)
        addKeyRoutes(to: router)
        addJobRoutes(to: router)
        router.add(middleware: MethodNotAllowedMiddleware(routes: router.routes))
        let app = Application(
            router: router,
            server: GuardedHTTP1Channel.builder(limits: configuration.connections, tls: configuration.tls, metrics: metrics, logger: logger),
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "sluice"),
            logger: logger
        )
        // Key changes and model activations reach this replica at once; the cache lifetime and
        // the model poll are the fallback if a message is lost.
        let authenticator = access.authenticator
        let localDenial = access.limiter.localDenial
        let models = self.models
        let subscriber = RedisSubscriber(
            configuration: configuration.redis,
            channels: [KeyStore.invalidationChannel, ModelRegistry.activationChannel],
            logger: logger,
            onReconnect: {
                authenticator.invalidateAll()
                localDenial?.invalidateAll()
            },
            onMessage: { channel, message in
                if channel == KeyStore.invalidationChannel {
                    let id = String(decoding: message, as: UTF8.self)
                    authenticator.invalidate(id)
                    localDenial?.invalidate(id)
                } else {
                    Task { await models.refresh() }
                }
            }
        )
        let reloader = configuration.tls?.reloadOnSIGHUP(logger: logger)
        defer {
            reloader?.cancel()
            subscriber.close()
            redis.shutdown()
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await self.prepareModel() }
            group.addTask { await access.heartbeat.run(client: redis, breaker: access.breaker, logger: logger) }
            group.addTask { await self.chargeBackAfterOutages() }
            try await app.runService()
            group.cancelAll()
        }
    }

    /// Host, pid and a random part: names this process in Redis (model bootstrap, heartbeats).
    static let replicaID = "\(ProcessInfo.processInfo.hostName)-\(ProcessInfo.processInfo.processIdentifier)-\(UInt64.random(in: .min ... .max))"

    /// Once Redis answers again, charges what was admitted locally meanwhile back into it.
    private func chargeBackAfterOutages() async {
        while !Task.isCancelled {
            try? await Task.sleep(for: ReplicaHeartbeat.interval)
            guard !access.breaker.isOpen, access.degraded.pendingKeys > 0 else { continue }
            let charged = await access.degraded.chargeBack(limiter: access.limiter)
            logger.notice("charged degraded-mode admissions back into Redis", metadata: ["keys": "\(charged)"])
        }
    }

    /// Makes sure a model is active (training version 1 on the very first start, one replica
    /// only), then keeps the served model in step with the active version.
    private func prepareModel() async {
        // The random part of the id keeps two holders apart even if a restarted process gets the same pid.
        let owner = Self.replicaID
        while !Task.isCancelled {
            do {
                let model = try LogisticRegression.bootstrapModel()
                _ = try await models.registry.bootstrap(owner: owner) { model }
                break
            } catch {
                logger.warning("no active model yet; retrying", metadata: ["error": "\(error)"])
                try? await Task.sleep(for: .seconds(1))
            }
        }
        await models.run()
    }

    /// What a request is charged against.
    enum Charge {
        /// `cost` units on every policy of the key. When `deferrable`, a request over the limit
        /// whose slot comes within the key's deferral horizon is reserved instead of refused
        /// (the ``Decision/delay`` says when), for keys whose overflow is `delay` or `queue`.
        case key(cost: Int, deferrable: Bool)
        /// One unit of ``AccessControl/jobStatusPolicy``, apart from the key's own limits, so that
        /// polling a queued job never eats into the rate the job itself is waiting for.
        case jobStatus
        /// One unit on every policy of the key and on the replica's training limit
        /// (``ServiceConfiguration/trainingPolicy``), so that walking a model anywhere takes
        /// many uploads over a long time.
        case training
    }

    /// Authenticates (unless the caller already has, passing `record`), charges the request to the
    /// key's limits, checks the scope, then runs `body`; every response (success or problem)
    /// carries the `RateLimit` headers of the decision.
    func guarded(
        _ request: Request, _ context: SluiceRequestContext, scopes: Set<Scope>, charge: Charge = .key(cost: 1, deferrable: false),
        authenticated: KeyRecord? = nil,
        _ body: (KeyRecord, Decision) async throws -> Response
    ) async throws -> Response {
        let record: KeyRecord
        if let authenticated {
            record = authenticated
        } else {
            record = try await access.authenticate(request, context: context)
        }
        RequestFacts.record(keyID: record.id)
        let permitted = !scopes.isDisjoint(with: record.scopes)
        let decision: Decision
        // A request of a key with max_in_flight holds a lease from before its limiter check until
        // its answer is ready (held requests included; a queued one's ends with its 202).
        var lease: ConcurrencyLimiter.Lease?
        defer { access.returnLease(lease) }
        do {
            switch charge {
            case .key(let cost, let deferrable):
                if permitted { lease = try await access.takeLease(record, logger: context.logger) }
                let horizon = deferrable && permitted ? record.deferralHorizon : .zero
                decision = try await access.admit(record, policies: record.limiterPolicies, cost: cost, horizon: horizon, logger: context.logger)
                await access.tryShadowPolicies(record, cost: cost, logger: context.logger)
            case .jobStatus:
                decision = try await access.admit(record, policies: [AccessControl.jobStatusPolicy], cost: 1, horizon: .zero, logger: context.logger)
            case .training:
                decision = try await access.admit(record, policies: record.limiterPolicies + [configuration.trainingPolicy], cost: 1, horizon: .zero, logger: context.logger)
            }
        } catch {
            RequestFacts.record(decision: "denied")
            throw error
        }
        RequestFacts.record(decision: decision.delay > .zero ? "deferred" : "allowed")
        let headers = AccessControl.headers(for: decision)
        do {
            guard permitted else {
                throw Problem.forbidden(missing: scopes.map(\.rawValue).sorted())
            }
            var response = try await body(record, decision)
            response.headers.append(contentsOf: headers)
            return response
        } catch var problem as Problem {
            problem.headers.append(contentsOf: headers)
            throw problem
        }
    }

    /// ``guarded(_:_:scopes:charge:_:)`` for handlers that need only the key's record.
    func guarded(
        _ request: Request, _ context: SluiceRequestContext, scopes: Set<Scope>, _ body: (KeyRecord) async throws -> Response
    ) async throws -> Response {
        try await guarded(request, context, scopes: scopes) { record, _ in try await body(record) }
    }
}
