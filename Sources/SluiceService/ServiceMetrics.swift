import Prometheus
import SluiceLimiter
import Synchronization

/// The service's Prometheus metrics, served at `GET /metrics` (scope `metrics`).
final class ServiceMetrics: Sendable {
    let registry = PrometheusCollectorRegistry()
    let redisErrors: Counter
    let authFailures: Counter
    let refusedArtifacts: Counter
    let activeModelVersion: Gauge
    private let decisionLatency: DurationHistogram
    private let allowed: Counter
    private let denied: Counter
    /// Request counters by "route status", so the hot path skips the registry's lookup.
    private let requestCounters = Mutex<[String: Counter]>([:])

    init() {
        redisErrors = registry.makeCounter(name: "sluice_redis_errors_total", help: "Redis calls that failed (timeouts, lost connections, errors).")
        authFailures = registry.makeCounter(name: "sluice_auth_failures_total", help: "Requests refused for a missing, invalid or expired key.")
        refusedArtifacts = registry.makeCounter(
            name: "sluice_model_artifacts_refused_total", help: "Model artifacts refused: bad signature or unusable content.")
        activeModelVersion = registry.makeGauge(name: "sluice_model_active_version", help: "The model version this replica serves.")
        decisionLatency = registry.makeDurationHistogram(
            name: "sluice_limiter_decision_seconds",
            buckets: [.microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10),
                      .milliseconds(50), .milliseconds(250), .seconds(1)],
            help: "Time to a rate-limit decision, Redis round trip included.")
        allowed = registry.makeCounter(name: "sluice_limiter_decisions_total", labels: [("decision", "allowed")], help: "Rate-limit decisions.")
        denied = registry.makeCounter(name: "sluice_limiter_decisions_total", labels: [("decision", "denied")], help: "Rate-limit decisions.")
    }

    func recordDecision(_ decision: Decision, duration: Duration) {
        (decision.isAllowed ? allowed : denied).increment()
        decisionLatency.record(duration)
    }

    func recordRequest(route: String, status: Int) {
        let key = "\(route) \(status)"
        let counter = requestCounters.withLock { counters in
            if let counter = counters[key] { return counter }
            let counter = registry.makeCounter(
                name: "sluice_http_requests_total", labels: [("route", route), ("status", String(status))],
                help: "HTTP requests by route and status.")
            counters[key] = counter
            return counter
        }
        counter.increment()
    }

    /// The Prometheus text exposition of every metric.
    func exposition() -> [UInt8] {
        var buffer: [UInt8] = []
        registry.emit(into: &buffer)
        return buffer
    }
}
