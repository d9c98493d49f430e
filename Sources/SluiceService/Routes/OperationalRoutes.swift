import Hummingbird
import SluiceAuth
import SluiceLimiter
import SluiceModel
import SluiceRedis

/// `/healthz` (liveness), `/readyz` (readiness, for load balancers) and `/metrics` (scope `metrics`).
struct OperationalRoutes {
    let admission: Admission
    /// Readiness asks Redis whether it answers.
    let redis: any RedisCommands
    /// Degraded mode (open) is still ready for a replica that knows keys it serves then.
    let breaker: CircuitBreaker
    let authenticator: KeyAuthenticator
    let models: ModelHolder
    let metrics: ServiceMetrics

    var collection: RouteCollection<SluiceRequestContext> {
        let router = RouteCollection(context: SluiceRequestContext.self)
        /// Liveness: the process answers.
        router.get("/healthz") { _, _ in
            try Response.json(["status": "ok"])
        }

        /// Readiness: Redis answers (any master of a Redis Cluster) and a verified model is
        /// loaded. A load balancer drains a replica that is not ready.
        router.get("/readyz") { _, _ -> Response in
            try await readiness()
        }

        router.get("/metrics") { request, context in
            try await admission.admit(request, context, scopes: [.metrics]) { _ in
                Response(
                    status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                    body: .init(byteBuffer: ByteBuffer(bytes: metrics.exposition())))
            }
        }
        return router
    }

    private func readiness() async throws -> Response {
        if let degraded = try degradedReadiness() { return degraded }
        do {
            try await redis.pingAny()
        } catch {
            metrics.redisErrors.increment()
            // An outage no request has met yet: a refused connection opens the breaker at once.
            breaker.record(error)
            if let degraded = try degradedReadiness() { return degraded }
            throw Problem.unavailable("Redis is unreachable.")
        }
        guard let model = models.current else { throw Problem.unavailable("No verified model is loaded yet.") }
        return try Response.json(ReadinessView(model_version: model.version))
    }

    /// Degraded mode (Redis unreachable) is still ready when this replica knows keys with
    /// on_redis_failure=local: it serves them, and every replica shares the same Redis, so
    /// another would do no better. The body and Sluice-Degraded say so, for load-balancer
    /// checks that want only fully healthy replicas (HAProxy: `http-check expect string`).
    private func degradedReadiness() throws -> Response? {
        guard breaker.isOpen, authenticator.knowsKeysServedWhenRedisFails, let model = models.current else { return nil }
        var response = try Response.json(ReadinessView(status: "degraded", model_version: model.version))
        response.headers[.sluiceDegraded] = "local"
        return response
    }
}

/// `/readyz`: `ready` or `degraded`, and the model version served.
struct ReadinessView: Encodable {
    var status = "ready"
    var model_version: Int
}
