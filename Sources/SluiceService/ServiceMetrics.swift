import Prometheus
import SluiceLimiter
import SluiceMetrics
import SluiceRedis
import Synchronization

/// The service's Prometheus metrics, served at `GET /metrics` (scope `metrics`).
final class ServiceMetrics: Sendable {
    let process: ProcessMetrics
    var registry: PrometheusCollectorRegistry { process.registry }
    var redisErrors: Counter { process.redisErrors }
    let authFailures: Counter
    /// Connections closed at once because `--max-connections` were open.
    let refusedConnections: Counter
    let openConnections: Gauge
    /// Connections cut off for not sending a whole request within `--read-timeout`.
    let readTimeouts: Counter
    private let decisionLatency: DurationHistogram
    private let allowed: Counter
    private let held: Counter
    private let modeRedis: Gauge
    private let modeLocal: Gauge
    private let queued: Counter
    private let denied: Counter
    /// Request counters by "route status", so the hot path skips the registry's lookup.
    private let requestCounters = Mutex<[String: Counter]>([:])
    /// Local denials by policy name (``LocalDenial``).
    private let localDenials = Mutex<[String: Counter]>([:])
    /// Requests a `shadow` policy would have refused, by policy name.
    private let shadowDenials = Mutex<[String: Counter]>([:])
    /// Decisions of tenants' keys, by tenant and decision: the first ``tenantLabels`` tenants a
    /// replica sees keep their id as the label, later ones share `other`, so that the series stay
    /// bounded however many tenants there are (per-tenant usage beyond them: `GET /v1/usage`).
    private let tenantDecisions = Mutex<[String: Counter]>([:])
    static let tenantLabels = 100

    init(redis: RedisClient? = nil) {
        let process = ProcessMetrics(role: "replica", redis: redis)
        self.process = process
        let registry = process.registry
        authFailures = registry.makeCounter(
            descriptor: Self.name("auth", "failures", "total", "Requests refused for a missing, invalid or expired key."))
        refusedConnections = registry.makeCounter(
            descriptor: Self.name("http", "connections_refused", "total", "Connections closed on arrival because --max-connections were open."))
        openConnections = registry.makeGauge(descriptor: Self.name("http", "connections_open", "", "Client connections open now."))
        readTimeouts = registry.makeCounter(
            descriptor: Self.name("http", "read_timeouts", "total", "Connections closed for not sending a whole request within --read-timeout."))
        decisionLatency = registry.makeDurationHistogram(
            descriptor: Self.name("limiter", "decision", "seconds", "Time to a rate-limit decision, Redis round trip included."),
            buckets: [.microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10),
                      .milliseconds(50), .milliseconds(250), .seconds(1)])
        let decisions = Self.name("limiter", "decisions", "total", "Rate-limit decisions.")
        allowed = registry.makeCounter(descriptor: decisions, labels: [("decision", "allowed")])
        denied = registry.makeCounter(descriptor: decisions, labels: [("decision", "denied")])
        let mode = Self.name("limiter", "mode", "", "1 for the mode this replica decides limits in: redis, or local (degraded: Redis unreachable).")
        modeRedis = registry.makeGauge(descriptor: mode, labels: [("mode", "redis")])
        modeLocal = registry.makeGauge(descriptor: mode, labels: [("mode", "local")])
        modeRedis.set(Int64(1))
        modeLocal.set(Int64(0))
        let deferred = Self.name("deferral", "requests", "total", "Requests over the limit served later: held until their slot, or queued.")
        held = registry.makeCounter(descriptor: deferred, labels: [("mode", "held")])
        queued = registry.makeCounter(descriptor: deferred, labels: [("mode", "queued")])
    }

    private static func name(_ subsystem: String, _ metric: String, _ unit: String, _ help: String) -> MetricNameDescriptor {
        ProcessMetrics.name(subsystem, metric, unit, help)
    }

    func recordDecision(_ decision: Decision, duration: Duration) {
        (decision.isAllowed ? allowed : denied).increment()
        guard decision.origin == .redis else {
            if decision.origin == .localDenial {
                Self.counter(in: localDenials, registry: registry, policy: decision.policy.name, metric: "local_denials",
                             help: "Requests over the limit denied by the replica alone, from what Redis' earlier replies prove.").increment()
            }
            return
        }
        decisionLatency.record(duration)
    }

    /// A request a `shadow` policy would have refused (it was served).
    func recordShadowDenial(policy: String) {
        Self.counter(in: shadowDenials, registry: registry, policy: policy, metric: "shadow_denials",
                     help: "Requests a shadow policy would have refused; they were served (shadow policies never deny).").increment()
    }

    /// A request of a tenant's key was decided (`allowed` or `denied`).
    func recordTenantDecision(tenant: String, allowed: Bool) {
        let decision = allowed ? "allowed" : "denied"
        let counter = tenantDecisions.withLock { counters in
            let known = counters["\(tenant) \(decision)"] != nil || counters.count < 2 * Self.tenantLabels
            let label = known ? tenant : "other"
            let key = "\(label) \(decision)"
            if let counter = counters[key] { return counter }
            let counter = registry.makeCounter(
                descriptor: Self.name("tenant", "requests", "total", "Requests of tenants' keys by tenant (the first 100 a replica sees; then other) and decision."),
                labels: [("tenant", label), ("decision", decision)])
            counters[key] = counter
            return counter
        }
        counter.increment()
    }

    /// The counter of `policy` in a per-policy family, made on first use.
    private static func counter(
        in counters: borrowing Mutex<[String: Counter]>, registry: PrometheusCollectorRegistry, policy: String, metric: String, help: String
    ) -> Counter {
        counters.withLock { counters in
            if let counter = counters[policy] { return counter }
            let counter = registry.makeCounter(descriptor: name("limiter", metric, "total", help), labels: [("policy", policy)])
            counters[policy] = counter
            return counter
        }
    }

    enum LimiterMode { case redis, local }

    func setLimiterMode(_ mode: LimiterMode) {
        modeRedis.set(Int64(mode == .redis ? 1 : 0))
        modeLocal.set(Int64(mode == .local ? 1 : 0))
    }

    func deferred(held isHeld: Bool) {
        (isHeld ? held : queued).increment()
    }

    func recordRequest(route: String, status: Int) {
        let key = "\(route) \(status)"
        let counter = requestCounters.withLock { counters in
            if let counter = counters[key] { return counter }
            let counter = registry.makeCounter(
                descriptor: Self.name("http", "requests", "total", "HTTP requests by route and status."),
                labels: [("route", route), ("status", String(status))])
            counters[key] = counter
            return counter
        }
        counter.increment()
    }

    /// The Prometheus text exposition of every metric.
    func exposition() -> [UInt8] { process.exposition() }

    /// A stored model artifact failed verification when a request loaded it.
    func recordRefusedArtifact() { process.refusedArtifacts.increment() }
}
