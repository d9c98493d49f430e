import Prometheus
import SluiceMetrics
import SluiceRedis
import Synchronization

/// A worker's Prometheus metrics, served at its `GET /metrics`.
public final class WorkerMetrics: Sendable {
    let process: ProcessMetrics
    var registry: PrometheusCollectorRegistry { process.registry }
    var redisErrors: Counter { process.redisErrors }
    let completed: Counter
    let failed: Counter
    let reclaimed: Counter
    /// Start − not_before: how late a job started after its slot.
    let lag: DurationHistogram
    private let depth: Gauge
    private let keyDepths = Mutex<[String: Gauge]>([:])

    /// `redis`: the client whose Redis Cluster redirects are exported.
    public init(redis: RedisClient? = nil) {
        let process = ProcessMetrics(role: "worker", redis: redis)
        self.process = process
        let registry = process.registry
        completed = registry.makeCounter(
            descriptor: Self.name("jobs", "completed", "total", "Jobs this worker ran and stored the result of."))
        failed = registry.makeCounter(descriptor: Self.name("jobs", "failed", "total", "Jobs this worker could not run."))
        reclaimed = registry.makeCounter(
            descriptor: Self.name("jobs", "reclaimed", "total", "Jobs this worker took back from a worker that missed the visibility timeout."))
        lag = registry.makeDurationHistogram(
            descriptor: Self.name("jobs", "lag", "seconds", "Start time minus not_before (the reserved slot) of each job run."),
            buckets: [.milliseconds(1), .milliseconds(5), .milliseconds(10), .milliseconds(50), .milliseconds(100), .milliseconds(500),
                      .seconds(1), .seconds(5), .seconds(30), .seconds(60), .seconds(300)])
        depth = registry.makeGauge(descriptor: Self.name("queue", "depth", "", "Jobs pending (queued or running) over all keys."))
    }

    private static func name(_ subsystem: String, _ metric: String, _ unit: String, _ help: String) -> MetricNameDescriptor {
        ProcessMetrics.name(subsystem, metric, unit, help)
    }

    /// Sets the depth gauges; a key whose queue has emptied loses its gauge, so the series a
    /// worker exports stay bounded by the keys with jobs pending, not by every key ever seen.
    func recordDepth(total: Int, perKey: [String: Int]) {
        depth.set(Double(total))
        keyDepths.withLock { gauges in
            for (key, gauge) in gauges where (perKey[key] ?? 0) == 0 {
                registry.unregisterGauge(gauge)
                gauges[key] = nil
            }
            for key in perKey.keys where (perKey[key] ?? 0) > 0 {
                let gauge = gauges[key] ?? registry.makeGauge(
                    descriptor: Self.name("queue", "key_depth", "", "Jobs pending (queued or running) per API key id."),
                    labels: [("key_id", key)])
                gauges[key] = gauge
                gauge.set(Double(perKey[key] ?? 0))
            }
        }
    }

    /// The Prometheus text exposition of every metric.
    public func exposition() -> [UInt8] { process.exposition() }
}
