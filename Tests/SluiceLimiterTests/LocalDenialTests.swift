import Foundation
import SluiceCore
import SluiceRedis
import SluiceTestSupport
import Synchronization
import Testing

@testable import SluiceLimiter

@Suite("Local denial against a real redis-server")
struct LocalDenialTests {
    let prefix = "ld\(UUID().uuidString.prefix(6).lowercased())"

    /// Three replicas' limiters on one Redis, each with its own bounds.
    private func replicas(namespace: String, local: Bool) throws -> [RateLimiter] {
        try (0..<3).map { _ in
            RateLimiter(client: try RedisServer.sharedClient(), namespace: namespace, localDenial: local ? LocalDenial() : nil)
        }
    }

    /// Every local denial is one Redis gives too: asked right after the proof, Redis either denies
    /// with a retry time no earlier than the proven one, or admits only once its clock has passed
    /// the proven time (less the horizon). Several keys, policy sets, costs and horizons.
    @Test func everyLocalDenialIsARedisDenial() async throws {
        let limiters = try replicas(namespace: "\(prefix)a", local: true)
        let plain = RateLimiter(client: try RedisServer.sharedClient(), namespace: "\(prefix)a")
        let shapes: [(policies: [Policy], horizon: Duration)] = [
            ([Policy(name: "fast", rate: 40, period: .seconds(1), burst: 5)], .zero),
            ([Policy(name: "a", rate: 50, period: .seconds(1), burst: 10), Policy(name: "b", rate: 200, period: .seconds(10), burst: 30)], .zero),
            ([Policy(name: "held", rate: 30, period: .seconds(1), burst: 3)], .milliseconds(100)),
            ([Policy(name: "odd", rate: 7, period: .milliseconds(333), burst: 4)], .zero),
        ]
        struct Tally { var local = 0, redisDenied = 0, admittedAfter = 0, violations: [String] = [] }
        let tally = Shared(Tally())
        let prefix = prefix
        let deadline = ContinuousClock.now + .seconds(3)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<12 {
                group.addTask {
                    var n = worker
                    while ContinuousClock.now < deadline {
                        n += 1
                        let (policies, horizon) = shapes[n % shapes.count]
                        let key = "\(prefix)-\(n % shapes.count)"
                        let cost = 1 + n % 3
                        let limiter = limiters[n % 3]
                        let decision = try await limiter.check(key: key, policies: policies, cost: cost, horizon: horizon)
                        guard decision.origin == .localDenial else { continue }
                        let proven = decision.decidedAt + (decision.retryAfter?.microseconds ?? 0)
                        let redis = try await plain.check(key: key, policies: policies, cost: cost, horizon: horizon)
                        tally.value.withLock { tally in
                            tally.local += 1
                            if redis.isAllowed {
                                tally.admittedAfter += 1
                                if redis.decidedAt < proven - horizon.microseconds {
                                    tally.violations.append("\(key) cost \(cost): Redis admitted at \(redis.decidedAt), proven denied until \(proven)")
                                }
                            } else {
                                tally.redisDenied += 1
                                let redisThreshold = redis.decidedAt + (redis.retryAfter?.microseconds ?? Int64.max / 2)
                                if redisThreshold + 1 < proven {
                                    tally.violations.append("\(key) cost \(cost): Redis retry at \(redisThreshold), proven \(proven)")
                                }
                            }
                        }
                        try await Task.sleep(for: .microseconds(200))
                    }
                }
            }
            try await group.waitForAll()
        }
        let result = tally.value.withLock { $0 }
        #expect(result.violations.isEmpty, "\(result.violations.prefix(5))")
        print("local denials: \(result.local), Redis denied \(result.redisDenied), admitted once its clock passed the proven time \(result.admittedAfter)")
        #expect(result.local > 200, "a 3 s flood over four keys must be denied locally often: \(result.local)")
        #expect(result.redisDenied > result.local * 9 / 10, "Redis confirmed \(result.redisDenied) of \(result.local) local denials")
        for limiter in limiters { (limiter.client as? RedisClient)?.shutdown() }
        (plain.client as? RedisClient)?.shutdown()
    }

    /// One trace, decided by three replicas with local denial and by three without (apart in
    /// Redis), at the same moments: the same number admitted (within 1%), and neither admits
    /// more than burst + rate × window in any window (slots on Redis' clock).
    @Test func theSameTraceAdmitsTheSameWithAndWithoutLocalDenial() async throws {
        let withLocal = try replicas(namespace: "\(prefix)w", local: true)
        let without = try replicas(namespace: "\(prefix)o", local: false)
        let policies = [Policy(name: "default", rate: 200, period: .seconds(1), burst: 20)]
        let keys = ["\(prefix)-x", "\(prefix)-y"]
        struct Admitted { var with: [String: [Int64]] = [:], without: [String: [Int64]] = [:], local = 0 }
        let admitted = Shared(Admitted())
        // 10× the limit for 5 s: every 250 µs a request of cost 1 or 2 for one of the keys.
        let start = ContinuousClock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            for event in 0..<20_000 {
                let due = start + .microseconds(250 * event)
                if due > ContinuousClock.now { try await Task.sleep(until: due) }
                let key = keys[event % 2]
                let cost = event % 5 == 0 ? 2 : 1
                let replica = (event / 2) % 3
                for local in [true, false] {
                    let limiter = local ? withLocal[replica] : without[replica]
                    group.addTask {
                        let decision = try await limiter.check(key: key, policies: policies, cost: cost)
                        admitted.value.withLock { admitted in
                            if decision.origin == .localDenial { admitted.local += 1 }
                            guard decision.isAllowed else { return }
                            let slots = Array(repeating: decision.slotTime, count: cost)
                            if local { admitted.with[key, default: []] += slots } else { admitted.without[key, default: []] += slots }
                        }
                    }
                }
            }
            try await group.waitForAll()
        }
        let result = admitted.value.withLock { $0 }
        for key in keys {
            let with = result.with[key] ?? [], plain = result.without[key] ?? []
            #expect(abs(with.count - plain.count) <= max(1, plain.count / 100), "\(key): \(with.count) admitted with local denial, \(plain.count) without")
            for slots in [with, plain] {
                #expect(Allowance.overAdmission(slots.sorted(), burst: policies[0].burst, interval: policies[0].emissionIntervalMicroseconds) == 0, "\(key): more than burst + rate × window")
            }
        }
        #expect(result.local > 1_000, "most of the 10× flood is denied locally: \(result.local)")
        print("same trace: admitted with local denial \(keys.map { result.with[$0]?.count ?? 0 }), without \(keys.map { result.without[$0]?.count ?? 0 }); \(result.local) of 20000 denied locally")
        for limiter in withLocal + without { (limiter.client as? RedisClient)?.shutdown() }
    }

    @Test func changedPoliciesInvalidationAndResetEndLocalDenial() async throws {
        let limiter = RateLimiter(client: try RedisServer.sharedClient(), namespace: "\(prefix)c", localDenial: LocalDenial())
        defer { (limiter.client as? RedisClient)?.shutdown() }
        let key = "\(prefix)-c"
        let policy = Policy(rate: 1, period: .seconds(60), burst: 2)
        for _ in 0..<3 { _ = try await limiter.check(key: key, policies: [policy]) }
        let denial = try #require(limiter.provenDenial(key: key, policies: [policy]), "the third request was denied by Redis; a fourth is provably denied")
        #expect(denial.origin == .localDenial && !denial.isAllowed && denial.policy == policy)
        let retry = try #require(denial.retryAfter)
        #expect(retry > .seconds(55) && retry <= .seconds(60), "\(retry)")
        #expect(denial.states.first?.remaining == 0)
        #expect(try await limiter.check(key: key, policies: [policy]).origin == .localDenial)
        // Another policy (the key's limits changed): only Redis can tell.
        #expect(limiter.provenDenial(key: key, policies: [Policy(rate: 2, period: .seconds(60), burst: 2)]) == nil)
        // A cost within the horizon is reserved by Redis, never denied locally.
        #expect(limiter.provenDenial(key: key, policies: [policy], horizon: .seconds(120)) == nil)
        limiter.localDenial?.invalidate(key)
        #expect(limiter.provenDenial(key: key, policies: [policy]) == nil)
        _ = try await limiter.check(key: key, policies: [policy])
        #expect(limiter.provenDenial(key: key, policies: [policy]) != nil)
        try await limiter.reset(key: key, policies: [policy])
        #expect(limiter.provenDenial(key: key, policies: [policy]) == nil)
        #expect(try await limiter.check(key: key, policies: [policy]).isAllowed, "after a reset Redis admits again")
    }

    @Test func boundsAreKeptForAtMostCapacityKeys() async throws {
        let limiter = RateLimiter(client: try RedisServer.sharedClient(), namespace: "\(prefix)l", localDenial: LocalDenial(capacity: 3))
        defer { (limiter.client as? RedisClient)?.shutdown() }
        let policy = Policy(rate: 1, period: .seconds(60), burst: 1)
        for index in 0..<5 {
            for _ in 0..<2 { _ = try await limiter.check(key: "\(prefix)-\(index)", policies: [policy]) }
        }
        #expect(limiter.localDenial?.count == 3)
        #expect(limiter.provenDenial(key: "\(prefix)-0", policies: [policy]) == nil, "the least recently used key was forgotten")
        #expect(limiter.provenDenial(key: "\(prefix)-4", policies: [policy]) != nil)
    }

    @Test func lruCacheEvictsTheLeastRecentlyUsed() {
        var cache = LRUCache<Int, String>(capacity: 3)
        for key in 1...3 { cache.set(key, "\(key)") }
        _ = cache.get(1)
        cache.set(4, "4")  // evicts 2, the least recently used
        #expect(cache.get(2) == nil && cache.get(1) == "1" && cache.get(3) == "3" && cache.get(4) == "4")
        cache.remove(3)
        cache.set(5, "5")
        cache.set(6, "6")  // evicts 1
        #expect(cache.count == 3 && cache.get(1) == nil && cache.get(4) == "4" && cache.get(5) == "5" && cache.get(6) == "6")
        cache.removeAll()
        #expect(cache.count == 0 && cache.get(4) == nil)
    }
}

