import Prometheus
import SluiceModel
import SluiceRedis
import Synchronization

/// The Prometheus registry of one Sluice process (replica or worker) with what every process
/// reports alike: failed Redis calls and the model it runs.
public final class ProcessMetrics: Sendable {
    public let registry = PrometheusCollectorRegistry()
    public let redisErrors: Counter
    public let refusedArtifacts: Counter
    public let activeModelVersion: Gauge
    private let movedRedirects: Counter
    private let askRedirects: Counter
    /// `sluice_secret_reloads_total` by secret and outcome, made on first use.
    private let secretReloads = Mutex<[String: Counter]>([:])
    /// Redis Cluster redirects already counted, and the client they come from.
    private let redirectsSeen = Mutex<(moved: Int, ask: Int)>((0, 0))
    private let redis: RedisClient?

    /// `role` names the process in help texts: "replica" or "worker".
    /// `redis`: the client whose Redis Cluster redirects are exported.
    public init(role: String, redis: RedisClient? = nil) {
        self.redis = redis
        let redirects = Self.name("redis", "redirects", "total", "Redis Cluster redirects followed: MOVED (the slot moved) and ASK (it is moving).")
        movedRedirects = registry.makeCounter(descriptor: redirects, labels: [("kind", "moved")])
        askRedirects = registry.makeCounter(descriptor: redirects, labels: [("kind", "ask")])
        redisErrors = registry.makeCounter(
            descriptor: Self.name("redis", "errors", "total", "Redis calls that failed (timeouts, lost connections, errors)."))
        refusedArtifacts = registry.makeCounter(
            descriptor: Self.name("model", "artifacts_refused", "total", "Model artifacts refused: bad signature or unusable content."))
        activeModelVersion = registry.makeGauge(descriptor: Self.name("model", "active_version", "", "The model version this \(role) runs."))
    }

    /// `sluice_<subsystem>_<metric>_<unit>`.
    public static func name(_ subsystem: String, _ metric: String, _ unit: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(namespace: "sluice", subsystem: subsystem, metricName: metric, unitName: unit, helpText: help)
    }

    /// Counts one reload of a changed secret file (see `SecretWatcher`).
    public func recordSecretReload(secret: String, outcome: String) {
        let counter = secretReloads.withLock { counters in
            let key = "\(secret) \(outcome)"
            if let counter = counters[key] { return counter }
            let counter = registry.makeCounter(
                descriptor: Self.name("secret", "reloads", "total", "Changed secret files taken (ok) or refused, by secret and outcome."),
                labels: [("secret", secret), ("outcome", outcome)])
            counters[key] = counter
            return counter
        }
        counter.increment()
    }

    /// Records what a ``ModelHolder`` reports.
    public func record(_ event: ModelHolder.Event) {
        switch event {
        case .loaded(let version): activeModelVersion.set(Double(version))
        case .refused: refusedArtifacts.increment()
        case .redisError: redisErrors.increment()
        }
    }

    /// The Prometheus text exposition of every metric in the registry.
    public func exposition() -> [UInt8] {
        if let counts = redis?.redirects {
            let (moved, ask) = redirectsSeen.withLock { seen in
                defer { seen = counts }
                return (counts.moved - seen.moved, counts.ask - seen.ask)
            }
            if moved > 0 { movedRedirects.increment(by: Int64(moved)) }
            if ask > 0 { askRedirects.increment(by: Int64(ask)) }
        }
        var buffer: [UInt8] = []
        registry.emit(into: &buffer)
        return buffer
    }
}
