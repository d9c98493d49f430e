import SluiceCore
import Synchronization

/// Denies, without asking Redis, requests that Redis would certainly deny.
///
/// **Why it is exact.** Between administrative changes a policy's theoretical arrival time (TAT)
/// never decreases: `gcra.lua` only ever writes a larger one, and a key that expires had a TAT
/// already in the past. So the TAT in every limiter reply is a *lower bound* on that policy's TAT
/// from then on. `gcra.lua` refuses a request of cost `c` at Redis time `now` when
/// `now < tat + interval × (c − burst) − horizon`; with `tat` replaced by its lower bound and `now`
/// by an *upper* bound on Redis' clock, the inequality can only become harder to satisfy, so
/// whenever it holds here it holds in Redis. A local denial is therefore never a request Redis
/// would have admitted (or reserved) at that moment.
///
/// **Why the clock mapping is safe.** A reply carries the Redis time `R` at which the script ran,
/// and the script ran after the replica sent the call at its monotonic time `S`. At any later
/// local time `L`, Redis' clock reads at most `R + (L − S)`: the script ran no earlier than `S`
/// locally. On top, ``clockSlack`` allows for the two clocks ticking at different rates
/// (1,000 ppm, far above what NTP-disciplined clocks drift). Bounds are per Redis node's clock:
/// when slots move in a Redis Cluster (a `MOVED` answer: resharding or failover), every bound
/// learnt before is dropped, since another node's clock may be ahead. Only a forward step of
/// Redis' wall clock could break the bound; such a step breaks every TIME-based limiter alike.
///
/// **Invalidation.** Every reply replaces the bounds of its key (a reply contradicting a bound,
/// e.g. after a reset, simply becomes the new bound); a key's policy change, rotation, revocation
/// or deletion reaches ``invalidate(_:)`` through the key-change announcements, and bounds are
/// only used for policies identical to the ones they were measured for. Memory is bounded by an
/// LRU of ``capacity`` limiter keys.
public final class LocalDenial: Sendable {
    /// What the latest reply for one limiter key said.
    struct Bounds {
        /// Per policy (its ``Policy/stateName``): the policy and a lower bound on its TAT (µs, Redis' clock).
        var tats: [String: (policy: Policy, tat: Int64)]
        /// The Redis time of the reply (µs) and the local time the call was sent.
        var redisTime: Int64
        var sentAt: ContinuousClock.Instant
        /// The Redis Cluster layout the reply came under (see the type's comment).
        var epoch: Int
    }

    public let capacity: Int
    private let entries: Mutex<LRUCache<String, Bounds>>
    /// Keys at their limit with a call in flight, and the checks waiting for its reply.
    private let inFlight = Mutex<[String: [CheckedContinuation<Void, Never>]]>([:])

    public init(capacity: Int = 100_000) {
        self.capacity = capacity
        self.entries = Mutex(LRUCache(capacity: capacity))
    }

    /// What a check should do.
    enum Path {
        /// Answer this denial: Redis would certainly give it.
        case denied(Decision)
        /// Ask Redis, sending `floor` (``floorArgument(_:policies:now:)``) when there is one; when
        /// `leading`, call ``finish(_:)`` after recording the reply.
        case call(leading: Bool, floor: String?)
        /// A call for this key, at its limit, is in flight: ``waitForCall(_:)``, then look again
        /// (or, after waiting long enough, call with `floor`).
        case wait(floor: String?)
    }

    /// Denies what the bounds prove; otherwise lets one call per key at its limit go to Redis
    /// and the others wait for its reply, which usually proves them denied. (A flood of one key
    /// would otherwise send every request that arrives while a slot is freeing up to Redis.)
    /// Keys with room left are never held back: their checks run concurrently as before.
    /// One look at the key's bounds serves both the denial and the floor of the call.
    func path(key: String, policies: [Policy], cost: Int, horizon: Duration, epoch: Int, now: ContinuousClock.Instant = .now) -> Path {
        guard let bounds = entries.withLock({ $0.get(key) }) else { return .call(leading: false, floor: nil) }
        // Floors outlive a change of the cluster layout; the denial bounds do not.
        guard bounds.epoch == epoch else { return .call(leading: false, floor: Self.floorArgument(bounds, policies: policies, now: now)) }
        if var denial = Self.denial(bounds, policies: policies, cost: cost, horizon: horizon, now: now) {
            denial.key = key
            return .denied(denial)
        }
        let floor = Self.floorArgument(bounds, policies: policies, now: now)
        guard Self.isAtLimit(bounds, policies: policies, cost: cost, horizon: horizon, now: now) else { return .call(leading: false, floor: floor) }
        return inFlight.withLock { calls in
            if calls[key] != nil { return .wait(floor: floor) }
            calls[key] = []
            return .call(leading: true, floor: floor)
        }
    }

    /// Returns once the leading call for `key` has been answered (at once if there is none).
    func waitForCall(_ key: String) async {
        await withCheckedContinuation { continuation in
            let waiting = inFlight.withLock { calls -> Bool in
                guard calls[key] != nil else { return false }
                calls[key]!.append(continuation)
                return true
            }
            if !waiting { continuation.resume() }
        }
    }

    /// Ends the leading call for `key` (after its reply was recorded, or it failed).
    func finish(_ key: String) {
        let waiting = inFlight.withLock { $0.removeValue(forKey: key) } ?? []
        for continuation in waiting { continuation.resume() }
    }

    public var count: Int { entries.withLock { $0.count } }

    /// Learns the TAT bounds of `decision`, a reply from Redis to a call sent at `sentAt`.
    func record(key: String, decision: Decision, sentAt: ContinuousClock.Instant, epoch: Int) {
        guard decision.origin == .redis, decision.decidedAt > 0 else { return }
        entries.withLock { cache in
            // A later reply about a known key: merged in place, newest wins per policy (the bounds
            // of its other policy sets, e.g. its job-status policy, are kept). The older bounds'
            // mapping is replaced by a later one: still an upper bound on Redis' clock for them,
            // as any reply's is.
            let merged = cache.update(key) { known in
                guard known.sentAt <= sentAt, known.epoch == epoch else { return false }
                for state in decision.states { known.tats[state.policy.stateName] = (state.policy, state.tat) }
                known.redisTime = decision.decidedAt
                known.sentAt = sentAt
                return true
            }
            guard !merged else { return }
            var tats: [String: (policy: Policy, tat: Int64)] = [:]
            tats.reserveCapacity(decision.states.count)
            for state in decision.states { tats[state.policy.stateName] = (state.policy, state.tat) }
            cache.set(key, Bounds(tats: tats, redisTime: decision.decidedAt, sentAt: sentAt, epoch: epoch))
        }
    }

    /// `gcra.lua`'s `f:<floor_1>:…:<floor_n>` option: per policy the TAT lower bound the last reply
    /// gave (0 for a policy it did not cover), whatever Redis node gave it. `nil` when no bound
    /// still lies ahead of Redis' clock (a TAT in the past limits nothing: sending it would cost
    /// for nothing). Written straight into one string: for one policy it stays a small string,
    /// no allocation.
    ///
    /// **Why it is safe.** A reply's TAT is one Redis wrote (or would have), and TATs only grow
    /// between administrative changes, which drop the bounds here: a floor never makes a limit
    /// looser. Unlike a denial, a floor does not need Redis' clock: it is kept across a change of
    /// the Redis Cluster layout, which is exactly when it is needed: a promoted replica that
    /// missed the old master's last writes is repaired to it (`TAT = max(stored, floor)`). A
    /// node whose clock is behind the old master's only makes the key wait that much longer.
    static func floorArgument(_ bounds: Bounds, policies: [Policy], now: ContinuousClock.Instant) -> String? {
        let redisNow = Self.redisUpperBound(bounds, at: now)
        // The usual case, a key with room: no bound ahead, nothing to look up or spell.
        guard bounds.tats.values.contains(where: { $0.tat > redisNow }) else { return nil }
        var argument = "f"
        var ahead = false
        for policy in policies {
            argument += ":"
            guard let known = bounds.tats[policy.stateName], known.policy == policy else {
                argument += "0"
                continue
            }
            if known.tat > redisNow { ahead = true }
            argument += String(known.tat, radix: 16)
        }
        return ahead ? argument : nil
    }

    /// Forgets everything learnt about `key` (its policies changed, it was rotated or deleted).
    public func invalidate(_ key: String) {
        entries.withLock { $0.remove(key) }
    }

    public func invalidateAll() {
        entries.withLock { $0.removeAll() }
    }

    /// The decision Redis would certainly reach for this request, if the bounds prove a denial
    /// (beyond `horizon`); `nil` when only Redis can decide.
    func denial(key: String, policies: [Policy], cost: Int, horizon: Duration, epoch: Int, now: ContinuousClock.Instant = .now) -> Decision? {
        guard let bounds = entries.withLock({ $0.get(key) }), bounds.epoch == epoch else { return nil }
        var denial = Self.denial(bounds, policies: policies, cost: cost, horizon: horizon, now: now)
        denial?.key = key
        return denial
    }

    /// True when, by the bounds, one more request of this cost would use up the last room left.
    private static func isAtLimit(_ bounds: Bounds, policies: [Policy], cost: Int, horizon: Duration, now: ContinuousClock.Instant) -> Bool {
        let redisNow = redisUpperBound(bounds, at: now)
        for policy in policies {
            guard let known = bounds.tats[policy.stateName], known.policy == policy else { continue }
            let interval = policy.emissionIntervalMicroseconds
            if known.tat + interval * Int64(cost + 1 - policy.burst) - redisNow > horizon.microseconds { return true }
        }
        return false
    }

    private static func denial(_ bounds: Bounds, policies: [Policy], cost: Int, horizon: Duration, now: ContinuousClock.Instant) -> Decision? {
        let redisNow = Self.redisUpperBound(bounds, at: now)
        let horizonMicros = horizon.microseconds
        // First whether it is a proven denial at all (most checks of a key within its limits are
        // not): the states are built only for one.
        var proven = false
        for policy in policies {
            guard let known = bounds.tats[policy.stateName], known.policy == policy else { return nil }
            if known.tat + policy.emissionIntervalMicroseconds * Int64(cost - policy.burst) - redisNow > horizonMicros { proven = true }
        }
        guard proven else { return nil }
        var states: [Decision.PolicyState] = []
        states.reserveCapacity(policies.count)
        var decisive = -1
        var longestWait: Int64 = 0
        for (index, policy) in policies.enumerated() {
            guard let known = bounds.tats[policy.stateName], known.policy == policy else { return nil }
            let interval = policy.emissionIntervalMicroseconds
            let tat = max(known.tat, redisNow)
            // gcra.lua: denied while now - (tat + interval * (cost - burst)) < 0.
            let wait = known.tat + interval * Int64(cost - policy.burst) - redisNow
            if wait > horizonMicros, wait > longestWait {
                longestWait = wait
                decisive = index
            }
            let remaining = max(0, (redisNow - (tat - interval * Int64(policy.burst))) / interval)
            states.append(
                Decision.PolicyState(
                    policy: policy, remaining: Int(remaining), retryAfter: wait > 0 ? .microseconds(wait) : nil,
                    resetAfter: .microseconds(tat - redisNow), tat: known.tat))
        }
        guard decisive >= 0 else { return nil }
        let policy = policies[decisive]
        return Decision(
            isAllowed: false, policy: policy, remaining: states[decisive].remaining,
            retryAfter: cost > policy.burst ? nil : .microseconds(longestWait),
            resetAfter: states[decisive].resetAfter, states: states, decidedAt: redisNow, origin: .localDenial)
    }

    /// An upper bound on Redis' clock now (see the type's comment).
    static func redisUpperBound(_ bounds: Bounds, at now: ContinuousClock.Instant) -> Int64 {
        let elapsed = max(0, (now - bounds.sentAt).microseconds)
        return bounds.redisTime + elapsed + clockSlack(elapsed: elapsed)
    }

    /// 1,000 ppm of the time since the reply's call was sent, and 1 µs for rounding.
    static func clockSlack(elapsed: Int64) -> Int64 {
        1 + elapsed / 1_000
    }
}
