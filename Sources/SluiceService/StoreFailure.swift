import Logging
import SluiceRedis
import Synchronization

extension Problem {
    /// The one mapping of a failed call to a Redis-backed store (`what`: "rate limiter", "job
    /// queue", …) to a fail-secure `503`, counted in `sluice_redis_errors_total` and logged with
    /// its cause (at most once a second per store, with how many were not logged, so an outage
    /// does not flood the log). A full Redis (`maxmemory` reached) is named as such, to the client
    /// and in the log, rather than passed off as an outage: retrying will not help until an
    /// operator frees memory.
    static func storeFailure(_ what: String, cause: any Error, metrics: ServiceMetrics, logger: Logger) -> Problem {
        metrics.redisErrors.increment()
        let full = (cause as? any RedisBackedError)?.redisCause?.isOutOfMemory == true
        if let unlogged = StoreFailureLog.shared.admit(what) {
            var metadata: Logger.Metadata = ["store": "\(what)", "error": "\(cause)"]
            if unlogged > 0 { metadata["unlogged_since_last"] = "\(unlogged)" }
            logger.error(
                full ? "Redis is out of memory (maxmemory reached, noeviction): writes are refused until memory is freed or maxmemory raised"
                    : "\(what) unavailable",
                metadata: metadata)
        }
        guard full else { return .unavailable("The \(what) is unavailable; retry shortly.") }
        var problem = Problem.unavailable("Sluice's data store is full, so the \(what) cannot record this request; retry later.")
        problem.type = "/problems/store-full"
        problem.retryAfter = 30
        return problem
    }
}

extension Problem {
    /// Runs a call to a Redis-backed store; any failure becomes ``storeFailure(_:cause:metrics:logger:)``.
    static func storeCall<T>(
        _ what: String, metrics: ServiceMetrics, logger: Logger, _ call: () async throws -> T
    ) async throws(Problem) -> T {
        do {
            return try await call()
        } catch {
            throw storeFailure(what, cause: error, metrics: metrics, logger: logger)
        }
    }
}

/// At most one log line per store per second.
private final class StoreFailureLog: Sendable {
    static let shared = StoreFailureLog()
    private let last = Mutex<[String: (at: ContinuousClock.Instant, unlogged: Int)]>([:])

    /// The number of failures not logged since the last line, or `nil` when this one is not logged.
    func admit(_ store: String) -> Int? {
        let now = ContinuousClock.now
        return last.withLock { entries in
            if let entry = entries[store], now - entry.at < .seconds(1) {
                entries[store]?.unlogged += 1
                return nil
            }
            defer { entries[store] = (now, 0) }
            return entries[store]?.unlogged ?? 0
        }
    }
}
