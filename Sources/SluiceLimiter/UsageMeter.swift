import Foundation
import SluiceCore
import SluiceRedis
import Synchronization

/// Usage counts of the decisions `gcra.lua` does not make: local denials, degraded mode, requests
/// over `max_in_flight`, failed authentication of a known key. Kept in the replica and added to
/// the same hashes as the script's counts (``RateLimiter/check(key:policies:cost:horizon:usage:)``)
/// by ``flush(to:)``, a pipelined batch off the request path, every second: a replica that dies
/// loses at most its last second of these denials; admissions decided by Redis are counted by the
/// script itself, in the call that decides them.
public final class UsageMeter: Sendable {
    /// What a count is of: the fields `gcra.lua` writes (`a`, `c`, `r`, `q`) and the replica's own.
    public enum Count: String, Sendable, CaseIterable {
        case admitted = "a", cost = "c", rate = "r", quota = "q", concurrency = "i", auth = "u"
    }

    /// Per usage hash, per field (`<hour>:<count>`), the increment not yet written.
    private let pending = Mutex<[String: [String: Int64]]>([:])

    public init() {}

    /// Counts a decision made without `gcra.lua` (local denial, degraded mode).
    public func record(_ decision: Decision, key: String, usage: [String], cost: Int) {
        guard !usage.isEmpty, decision.origin != .redis else { return }
        if decision.isAllowed {
            add([(.admitted, 1), (.cost, Int64(cost))], key: key, usage: usage)
        } else {
            add([(Self.reason(decision, cost: cost), 1)], key: key, usage: usage)
        }
    }

    /// Counts a refusal of one kind (`max_in_flight`, authentication).
    public func recordDenial(_ count: Count, key: String, usage: [String]) {
        add([(count, 1)], key: key, usage: usage)
    }

    /// `quota` when a daily quota refused the request, as `gcra.lua` tells them apart.
    static func reason(_ decision: Decision, cost: Int) -> Count {
        let quota = decision.states.contains { $0.policy.name == Policy.dailyName && ($0.retryAfter != nil || cost > $0.policy.burst) }
        return quota ? .quota : .rate
    }

    private func add(_ counts: [(Count, Int64)], key: String, usage: [String], now: Date = Date()) {
        let hour = Int((now.timeIntervalSince1970 / 3600).rounded(.down))
        let day = UsageDay.today(now)
        pending.withLock { pending in
            for tag in usage {
                let hash = Keyspace.usage(key, tag: tag, day: day)
                for (count, amount) in counts { pending[hash, default: [:]]["\(hour):\(count.rawValue)", default: 0] += amount }
            }
        }
    }

    /// Writes what is pending (`HINCRBY`, and the 35-day expiry), one pipelined batch; kept for
    /// the next flush when Redis fails. Returns the hashes written.
    @discardableResult
    public func flush(to client: any RedisCommands) async -> Int {
        let batch = pending.withLock { pending in
            defer { pending = [:] }
            return pending
        }
        guard !batch.isEmpty else { return 0 }
        var written = 0
        await withTaskGroup(of: (String, [String: Int64])?.self) { group in
            for (hash, fields) in batch {
                group.addTask {
                    // What was written is not written again: only the rest is kept on a failure.
                    var rest = fields
                    do {
                        for (field, amount) in fields {
                            _ = try await client.send(RedisCommand("HINCRBY", hash, field, String(amount)))
                            rest[field] = nil
                        }
                        _ = try await client.send(RedisCommand("EXPIRE", hash, String(Self.lifetime)))
                        return nil
                    } catch {
                        return rest.isEmpty ? nil : (hash, rest)
                    }
                }
            }
            for await failed in group {
                guard let (hash, fields) = failed else {
                    written += 1
                    continue
                }
                pending.withLock { pending in
                    for (field, amount) in fields { pending[hash, default: [:]][field, default: 0] += amount }
                }
            }
        }
        return written
    }

    /// 35 days, in seconds: how long usage is kept.
    public static let lifetime = 35 * 86_400
}
