import Logging
import ServiceLifecycle
import SluiceLimiter
import SluiceRedis

/// Beats every ``ReplicaHeartbeat/interval``: counts live replicas (degraded mode's share) and
/// probes Redis for the circuit breaker.
struct HeartbeatService: Service {
    let heartbeat: ReplicaHeartbeat
    let redis: any RedisCommands
    let breaker: CircuitBreaker
    let logger: Logger

    func run() async {
        await cancelWhenGracefulShutdown { [self] in
            await heartbeat.run(client: redis, breaker: breaker, logger: logger)
        }
    }
}

/// Once Redis answers again, charges what was admitted locally meanwhile back into it.
struct ChargeBackService: Service {
    let degraded: DegradedLimiter
    let limiter: RateLimiter
    let breaker: CircuitBreaker
    let logger: Logger

    func run() async {
        await cancelWhenGracefulShutdown { [self] in
            while !Task.isCancelled {
                try? await Task.sleep(for: ReplicaHeartbeat.interval)
                guard !breaker.isOpen, degraded.pendingKeys > 0 else { continue }
                let charged = await degraded.chargeBack(limiter: limiter)
                logger.notice("charged degraded-mode admissions back into Redis", metadata: ["keys": "\(charged)"])
            }
        }
    }
}
