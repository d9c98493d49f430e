import SluiceCore
import Logging
import SluiceRedis
import Synchronization

/// Each replica writes a heartbeat to Redis every ``interval`` while healthy and reads back how
/// many replicas are alive: the N that degraded mode divides a key's limits by. During an outage
/// the last count is kept. The heartbeat is also the circuit breaker's probe: its success
/// closes an open breaker, its failure counts towards opening one.
public final class ReplicaHeartbeat: Sendable {
    public static let script = RedisScript(name: "heartbeat", source: PackageResources.heartbeat_lua)
    public static let key = Keyspace.replicas
    public static let interval: Duration = .milliseconds(500)
    /// A replica silent for this long is no longer counted.
    public static let lifetime: Duration = .seconds(3)

    public let id: String
    private let count = Atomic<Int>(1)

    public init(id: String) {
        self.id = id
    }

    /// The live replicas last counted (1 until the first heartbeat is answered).
    public var liveReplicas: Int { count.load(ordering: .relaxed) }

    /// Beats until the task is cancelled.
    public func run(client: any RedisCommands, breaker: CircuitBreaker, logger: Logger) async {
        var lastWarning: ContinuousClock.Instant?
        while !Task.isCancelled {
            do {
                let reply = try await client.evaluate(Self.script, keys: [Self.key], arguments: [id, String(Self.lifetime.microseconds / 1000)])
                if let live = reply.int, live >= 1 { count.store(live, ordering: .relaxed) }
                breaker.recordSuccess()
            } catch {
                if error.isUnavailable {
                    breaker.record(error)
                    logger.debug("heartbeat failed", metadata: ["error": "\(error)"])
                } else {
                    // Redis answers, but refuses (an ACL without the heartbeat's commands, say):
                    // no outage, yet the live count is stale. Say so, at most once a minute.
                    let now = ContinuousClock.now
                    if lastWarning.map({ now - $0 > .seconds(60) }) ?? true {
                        lastWarning = now
                        logger.warning("heartbeat refused by Redis; degraded mode would divide limits by a stale replica count", metadata: ["error": "\(error)"])
                    }
                }
            }
            try? await Task.sleep(for: Self.interval)
        }
    }
}
