import Prometheus
import Synchronization

/// A worker's Prometheus metrics, served at its `GET /metrics`.
public final class WorkerMetrics: Sendable {
    let registry = PrometheusCollectorRegistry()
    let completed: Counter
    let failed: Counter
    let reclaimed: Counter
    let redisErrors: Counter
    let refusedArtifacts: Counter
    let activeModelVersion: Gauge
    /// Start − not_before: how late a job started after its slot.
    let lag: DurationHistogram
    private let depth: Gauge
    private let keyDepths = Mutex<[String: Gauge]>([:])

    public init() {
        completed = registry.makeCounter(
            descriptor: Self.name("jobs", "completed", "total", "Jobs this worker ran and stored the result of."))
        failed = registry.makeCounter(descriptor: Self.name("jobs", "failed", "total", "Jobs this worker could not run."))
        reclaimed = registry.makeCounter(
            descriptor: Self.name("jobs", "reclaimed", "total", "Jobs this worker took back from a worker that missed the visibility timeout."))
        redisErrors = registry.makeCounter(descriptor: Self.name("redis", "errors", "total", "Redis calls that failed."))
        refusedArtifacts = registry.makeCounter(
            descriptor: Self.name("model", "artifacts_refused", "total", "Model artifacts refused: bad signature or unusable content."))
        activeModelVersion = registry.makeGauge(descriptor: Self.name("model", "active_version", "", "The model version this worker runs."))
        lag = registry.makeDurationHistogram(
            descriptor: Self.name("jobs", "lag", "seconds", "Start time minus not_before (the reserved slot) of each job run."),
            buckets: [.milliseconds(1), .milliseconds(5), .milliseconds(10), .milliseconds(50), .milliseconds(100), .milliseconds(500),
                      .seconds(1), .seconds(5), .seconds(30)])
        depth = registry.makeGauge(descriptor: Self.name("queue", "depth", "", "Jobs pending (queued or running) over all keys."))
    }

    /// `sluice_<subsystem>_<metric>_<unit>`.
    private static func name(_ subsystem: String, _ metric: String, _ unit: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(namespace: "sluice", subsystem: subsystem, metricName: metric, unitName: unit, helpText: help)
    }

    func recordDepth(total: Int, perKey: [String: Int]) {
        depth.set(Double(total))
        keyDepths.withLock { gauges in
            for key in Set(gauges.keys).union(perKey.keys) {
                let gauge = gauges[key] ?? registry.makeGauge(
                    descriptor: Self.name("queue", "key_depth", "", "Jobs pending (queued or running) per API key id."),
                    labels: [("key_id", key)])
                gauges[key] = gauge
                gauge.set(Double(perKey[key] ?? 0))
            }
        }
    }

    /// The Prometheus text exposition of every metric.
    public func exposition() -> [UInt8] {
        var buffer: [UInt8] = []
        registry.emit(into: &buffer)
        return buffer
    }
}
