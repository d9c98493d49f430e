import SluiceCore
import SluiceRedis
import Synchronization

/// The in-process GCRA a replica decides with while Redis is unreachable (degraded mode), for
/// keys whose `on_redis_failure` is `local`.
///
/// Each replica admits at rate ÷ N and burst ÷ N (rounded down, at least 1), N being the live
/// replicas last counted by ``ReplicaHeartbeat``; so the fleet admits at most the global
/// allowance over the outage when N is right, plus at most one local burst per replica when it
/// is not. It decides on this replica's monotonic clock, which no other replica needs to share.
///
/// What it admitted and elapsed time has not paid for yet (its outstanding debt per policy) is
/// charged back into Redis once Redis answers again (``chargeBack(limiter:)``, `gcra_charge.lua`),
/// so windows that span the outage's end hold across the fleet too.
public final class DegradedLimiter: Sendable {
    public static let chargeScript = RedisScript(name: "gcra_charge", source: PackageResources.gcra_charge_lua)

    private struct PolicyState {
        var policy: Policy
        /// Theoretical arrival time, µs on this replica's monotonic clock.
        var tat: Int64
        /// The replica count the state was scaled by.
        var replicas: Int
    }

    /// Keys decided locally (bounded: the least recently used are dropped, and charged no more).
    private let states: Mutex<LRUCache<String, [String: PolicyState]>>
    private let origin = ContinuousClock.now

    public init(capacity: Int = 100_000) {
        states = Mutex(LRUCache(capacity: capacity))
    }

    private func now() -> Int64 { (ContinuousClock.now - origin).microseconds + 1_000_000 }

    /// Decides `cost` requests of `key` locally, over every policy, all or nothing, with the same
    /// horizon semantics as `gcra.lua`; `replicas` divides rate and burst.
    public func check(key: String, policies: [Policy], cost: Int, horizon: Duration, replicas: Int) -> Decision {
        let replicas = max(1, replicas)
        let now = now()
        return states.withLock { cache in
            var known = cache.get(key) ?? [:]
            var waits: [Int64] = []
            var newTATs: [Int64] = []
            for policy in policies {
                let (interval, burst) = Self.scaled(policy, replicas: replicas)
                var state = known[policy.stateName] ?? PolicyState(policy: policy, tat: now, replicas: replicas)
                if state.policy != policy || state.replicas != replicas { state = PolicyState(policy: policy, tat: state.tat, replicas: replicas) }
                known[policy.stateName] = state
                let tat = max(state.tat, now)
                let newTAT = tat + interval * Int64(cost)
                waits.append(newTAT - interval * Int64(burst) - now)
                newTATs.append(newTAT)
            }
            let wait = waits.max() ?? 0
            let fits = policies.indices.allSatisfy { cost <= Self.scaled(policies[$0], replicas: replicas).burst }
            let admitted = wait <= 0 || (fits && wait <= horizon.microseconds)
            if admitted {
                for (index, policy) in policies.enumerated() { known[policy.stateName]?.tat = newTATs[index] }
            }
            cache.set(key, known)
            let states = policies.enumerated().map { index, policy in
                let (interval, burst) = Self.scaled(policy, replicas: replicas)
                let tat = max(known[policy.stateName]?.tat ?? now, now)
                return Decision.PolicyState(
                    policy: policy, remaining: max(0, Int((now - (tat - interval * Int64(burst))) / interval)),
                    retryAfter: admitted || waits[index] <= 0 ? nil : .microseconds(waits[index]), resetAfter: .microseconds(tat - now))
            }
            let decisive = admitted
                ? states.indices.min { states[$0].remaining < states[$1].remaining } ?? 0
                : waits.indices.max { waits[$0] < waits[$1] } ?? 0
            let policy = policies[decisive]
            return Decision(
                isAllowed: admitted, policy: policy, remaining: states[decisive].remaining,
                retryAfter: admitted || !fits ? nil : .microseconds(wait), resetAfter: states[decisive].resetAfter, states: states,
                delay: admitted && wait > 0 ? .microseconds(wait) : .zero, origin: .degraded, key: key)
        }
    }

    /// Charges every key's outstanding local debt into Redis and forgets it; keys whose charge
    /// fails are kept for the next call. Returns how many keys were charged.
    @discardableResult
    public func chargeBack(limiter: RateLimiter) async -> Int {
        let now = now()
        let pending = states.withLock { cache -> [(String, [PolicyState])] in
            var all: [(String, [PolicyState])] = []
            while let (key, policies) = cache.popOldest() { all.append((key, Array(policies.values))) }
            return all
        }
        var charged = 0
        for (key, policies) in pending {
            var arguments: [String] = []
            var owed: Int64 = 0
            for state in policies {
                let (interval, _) = Self.scaled(state.policy, replicas: state.replicas)
                // Local requests not yet paid for by elapsed time, each worth one request of the policy.
                let debt = max(0, state.tat - now)
                let outstanding = (debt + interval - 1) / interval
                owed += outstanding
                arguments += [
                    String(state.policy.emissionIntervalMicroseconds * outstanding, radix: 16),
                    String(state.policy.toleranceMicroseconds, radix: 16),
                ]
            }
            guard owed > 0 else { continue }
            let keys = policies.map { limiter.redisKey(for: key, policy: $0.policy) }
            do {
                _ = try await limiter.client.evaluate(Self.chargeScript, keys: keys, arguments: arguments)
                limiter.localDenial?.invalidate(key)
                charged += 1
            } catch {
                // Kept for the next try; a policy decided locally again meanwhile keeps its newer state.
                states.withLock { cache in
                    var kept = cache.get(key) ?? [:]
                    for state in policies where kept[state.policy.stateName] == nil { kept[state.policy.stateName] = state }
                    cache.set(key, kept)
                }
            }
        }
        return charged
    }

    public var pendingKeys: Int { states.withLock { $0.count } }

    /// The emission interval (µs) and burst of one replica's share of `policy`.
    static func scaled(_ policy: Policy, replicas: Int) -> (interval: Int64, burst: Int) {
        (policy.emissionIntervalMicroseconds * Int64(replicas), max(1, policy.burst / replicas))
    }
}
