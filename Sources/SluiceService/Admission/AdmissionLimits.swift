import SluiceAuth
import SluiceLimiter

/// What ``Admission`` charges requests with: the limiter in Redis and what stands in for it
/// while Redis fails, the `max_in_flight` leases, and Sluice's own policies. Built once per
/// replica (``SluiceServer``), which hands the same parts to the services that keep them up
/// (heartbeat, charge-back, pub/sub).
struct AdmissionLimits: Sendable {
    let limiter: RateLimiter
    /// The tenants whose budgets their keys share (cached like key records).
    let tenants: TenantDirectory
    /// Usage counts of what is decided without `gcra.lua` (which counts its own decisions).
    let usage: UsageMeter
    /// Failed authentication is limited per client address, so that guessing keys is throttled
    /// (``ServiceConfiguration/failedAuthPolicy``).
    let failedAuthPolicy: Policy
    /// Uploads to train, per replica (``ServiceConfiguration/trainingPolicy``).
    let trainingPolicy: Policy
    /// Open while Redis keeps failing: then keys served when Redis fails (`on_redis_failure:
    /// local`) wait for no Redis call and are decided by ``degraded``; other keys ask Redis as
    /// always (and get `503` when it fails).
    let breaker: CircuitBreaker
    let degraded: DegradedLimiter
    /// How many replicas share a key's limits in degraded mode.
    let heartbeat: ReplicaHeartbeat
    /// `max_in_flight`: leases of requests in flight, per key, across replicas.
    let concurrency: ConcurrencyLimiter
    let inFlightLease: Duration
}
