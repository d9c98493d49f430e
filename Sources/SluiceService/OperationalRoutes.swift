import Hummingbird
import SluiceRedis

extension SluiceServer {
    func addOperationalRoutes(to router: Router<SluiceRequestContext>) {
        /// Liveness: the process answers.
        router.get("/healthz") { _, _ in
            try Response.json(["status": "ok"])
        }

        /// Readiness: Redis answers and a verified model is loaded. A load balancer drains a
        /// replica that is not ready.
        router.get("/readyz") { _, _ -> Response in
            struct Ready: Encodable { var status = "ready", model_version: Int }
            // Degraded mode (Redis unreachable) is still ready when this replica knows keys with
            // on_redis_failure=local: it serves them, and every replica shares the same Redis, so
            // another would do no better. The body and Sluice-Degraded say so, for load-balancer
            // checks that want only fully healthy replicas (HAProxy: `http-check expect string`).
            if access.breaker.isOpen, access.authenticator.knowsKeysServedWhenRedisFails, let model = models.current {
                var response = try Response.json(Ready(status: "degraded", model_version: model.version))
                response.headers[.sluiceDegraded] = "local"
                return response
            }
            do {
                _ = try await redis.send(RedisCommand("PING"))
            } catch {
                metrics.redisErrors.increment()
                throw Problem.unavailable("Redis is unreachable.")
            }
            guard let model = models.current else { throw Problem.unavailable("No verified model is loaded yet.") }
            return try Response.json(Ready(model_version: model.version))
        }

        router.get("/metrics") { request, context in
            try await guarded(request, context, scopes: [.metrics]) { _ in
                Response(
                    status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                    body: .init(byteBuffer: ByteBuffer(bytes: metrics.exposition())))
            }
        }
    }
}
