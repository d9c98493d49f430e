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
    /// What a count is of: the fields `gcra.lua` writes (`a`, `e`, `r`, `q`) and the replica's own.
    public enum Count: String, Sendable, CaseIterable {
        /// Admitted requests, and their cost beyond one each (a batch's extra instances): a single
        /// request writes one field.
        case admitted = "a", extraCost = "e"
        case rate = "r", quota = "q", concurrency = "i", auth = "u"
    }

    /// One count not yet written: its hash (limiter key, tag, day), hour and kind. Made of the
    /// caller's strings, so counting a refusal builds no string (names are made at a flush).
    private struct Cell: Hashable {
        var key: String
        var tag: String
        var day: Int
        var hour: Int
        var count: Count
    }

    private let pending = Mutex<[Cell: Int64]>([:])

    public init() {}

    /// Counts a decision made without `gcra.lua` (local denial, degraded mode).
    public func record(_ decision: Decision, key: String, usage: [String], cost: Int) {
        guard !usage.isEmpty, decision.origin != .redis else { return }
        if decision.isAllowed {
            add(.admitted, 1, key: key, usage: usage)
            if cost > 1 { add(.extraCost, Int64(cost - 1), key: key, usage: usage) }
        } else {
            add(Self.reason(decision, cost: cost), 1, key: key, usage: usage)
        }
    }

    /// Counts a refusal of one kind (`max_in_flight`, authentication).
    public func recordDenial(_ count: Count, key: String, usage: [String]) {
        add(count, 1, key: key, usage: usage)
    }

    /// `quota` when a daily quota refused the request, as `gcra.lua` tells them apart.
    static func reason(_ decision: Decision, cost: Int) -> Count {
        for state in decision.states where state.policy.name == Policy.dailyName && (state.retryAfter != nil || cost > state.policy.burst) {
            return .quota
        }
        return .rate
    }

    private func add(_ count: Count, _ amount: Int64, key: String, usage: [String], now: Date = Date()) {
        let hour = Int((now.timeIntervalSince1970 / 3600).rounded(.down))
        let day = UsageDay.today(now)
        pending.withLock { pending in
            for tag in usage { pending[Cell(key: key, tag: tag, day: day, hour: hour, count: count), default: 0] += amount }
        }
    }

    /// Writes what is pending (`HINCRBY`, and the 35-day expiry: `PEXPIRE`, which the replica's Redis
    /// ACL user may send), one pipelined batch; kept for
    /// the next flush when Redis fails. Returns the hashes written.
    @discardableResult
    public func flush(to client: any RedisCommands) async -> Int {
        let cells = pending.withLock { pending in
            defer { pending = [:] }
            return pending
        }
        guard !cells.isEmpty else { return 0 }
        var batch: [String: [(cell: Cell, amount: Int64)]] = [:]
        for (cell, amount) in cells { batch[Keyspace.usage(cell.key, tag: cell.tag, day: cell.day), default: []].append((cell, amount)) }
        var written = 0
        await withTaskGroup(of: [(cell: Cell, amount: Int64)].self) { group in
            for (hash, counts) in batch {
                group.addTask {
                    // What was written is not written again: only the rest is kept on a failure.
                    var rest = counts
                    do {
                        for (cell, amount) in counts {
                            _ = try await client.send(RedisCommand("HINCRBY", hash, "\(cell.hour):\(cell.count.rawValue)", String(amount)))
                            rest.removeFirst()
                        }
                        _ = try await client.send(RedisCommand("PEXPIRE", hash, String(Self.lifetime * 1000)))
                    } catch {
                        return rest
                    }
                    return []
                }
            }
            for await failed in group {
                if failed.isEmpty { written += 1 }
                pending.withLock { pending in
                    for (cell, amount) in failed { pending[cell, default: 0] += amount }
                }
            }
        }
        return written
    }

    /// 35 days, in seconds: how long usage is kept.
    public static let lifetime = 35 * 86_400
}
