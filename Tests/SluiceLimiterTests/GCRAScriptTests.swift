import Foundation
import SluiceLimiter
import SluiceRedis
import SluiceTestSupport
import Testing

/// The script contract of `lua/gcra.lua`, called as a client of redis_rate's `allow_n` would.
@Suite("lua/gcra.lua against a real redis-server")
struct GCRAScriptTests {
    let client: RedisClient
    let key = "test:gcra:\(UUID().uuidString)"

    init() throws {
        client = try RedisServer.sharedClient()
    }

    /// redis_rate's reply fields, computed from the script's integer-µs reply.
    struct Reply {
        var allowed: Int, remaining: Int, retryAfter: Double, resetAfter: Double
    }

    /// One policy as redis_rate names it; the script takes its charge and allowance in µs.
    struct Limit {
        var burst: Int, rate: Int, period: Double
        /// period ÷ rate in µs, rounded up (the caller's conversion, done once per policy).
        var interval: Int { (Int((period * 1_000_000).rounded()) + rate - 1) / rate }
        var tolerance: Int { interval * burst }
        /// charge (interval × cost) and allowance (tolerance + horizon), in hexadecimal.
        func arguments(cost: Int, horizon: Int = 0) -> [String] {
            [String(interval * cost, radix: 16), String(tolerance + horizon, radix: 16)]
        }
    }

    /// The script's reply "admitted seconds µs tat_1 … tat_n" read as redis_rate's fields, per
    /// policy (the conformance test's own decoder, independent of RateLimiter's). The deciding
    /// policy: when denied the one with the longest wait, otherwise the one with the fewest remaining.
    func fields(_ reply: RedisReply, limits: [Limit], cost: Int) throws -> (admitted: Bool, now: Int, tats: [Int], decisive: Int, perPolicy: [Reply]) {
        let words = try #require(reply.string).split(separator: " ").map { try #require(Int($0)) }
        try #require(words.count == 3 + limits.count && (words[0] == 0 || words[0] == 1))
        let admitted = words[0] == 1, now = words[1] * 1_000_000 + words[2]
        // Charged TATs; a denial wrote nothing, so its state is the TAT without the charge.
        let tats = zip(limits, words.dropFirst(3)).map { limit, charged in admitted ? charged : charged - limit.interval * cost }
        let perPolicy = zip(limits, tats).map { limit, tat in
            let room = now - (tat - limit.tolerance)
            let wait = tat + limit.interval * cost - limit.tolerance - now
            return Reply(
                allowed: admitted ? cost : 0, remaining: max(0, room / limit.interval),
                retryAfter: admitted || wait <= 0 ? -1 : Double(wait) / 1e6, resetAfter: Double(tat - now) / 1e6)
        }
        let decisive = admitted
            ? perPolicy.indices.min { perPolicy[$0].remaining < perPolicy[$1].remaining }!
            : perPolicy.indices.max { perPolicy[$0].retryAfter < perPolicy[$1].retryAfter }!
        return (admitted, now, tats, decisive, perPolicy)
    }

    func allowN(_ key: String, burst: Int, rate: Int, period: Double, cost: Int) async throws -> Reply {
        let limit = Limit(burst: burst, rate: rate, period: period)
        let reply = try await client.evaluate(RateLimiter.script, keys: [key], arguments: limit.arguments(cost: cost))
        return try fields(reply, limits: [limit], cost: cost).perPolicy[0]
    }

    /// redis_rate's `PerSecond(10)`: burst 10, rate 10, period 1 s.
    func perSecond10(_ cost: Int) async throws -> Reply {
        try await allowN(key, burst: 10, rate: 10, period: 1, cost: cost)
    }

    // MARK: Published cases of the redis_rate family (TestAllow, TestAllowN_IncrementZero, TestRetryAfter)

    @Test func publishedAllowSequence() async throws {
        var r = try await perSecond10(1)
        #expect((r.allowed, r.remaining, r.retryAfter) == (1, 9, -1))
        #expect(abs(r.resetAfter - 0.1) < 0.01)
        r = try await perSecond10(2)
        #expect((r.allowed, r.remaining, r.retryAfter) == (2, 7, -1))
        #expect(abs(r.resetAfter - 0.3) < 0.01)
        r = try await perSecond10(7)
        #expect((r.allowed, r.remaining, r.retryAfter) == (7, 0, -1))
        #expect(abs(r.resetAfter - 0.999) < 0.01)
        r = try await perSecond10(1000)
        #expect((r.allowed, r.remaining) == (0, 0))
        #expect(abs(r.retryAfter - 99) < 1)
        #expect(abs(r.resetAfter - 0.999) < 0.01)
    }

    @Test func publishedIncrementZero() async throws {
        var r = try await perSecond10(0)
        #expect((r.allowed, r.remaining, r.retryAfter, r.resetAfter) == (0, 10, -1, 0))
        r = try await perSecond10(1)
        #expect((r.allowed, r.remaining, r.retryAfter) == (1, 9, -1))
        #expect(abs(r.resetAfter - 0.1) < 0.01)
        r = try await perSecond10(0)
        #expect((r.allowed, r.remaining, r.retryAfter) == (0, 9, -1))
        #expect(abs(r.resetAfter - 0.1) < 0.01)
    }

    @Test func publishedRetryAfterNeverExceedsTheInterval() async throws {
        for _ in 0..<1000 {
            let r = try await allowN(key, burst: 1, rate: 1, period: 0.001, cost: 1)
            if r.allowed == 0 { #expect(r.retryAfter <= 0.001) }
        }
    }

    // MARK: Our own contract

    @Test func deniedAndCostZeroAndOversizedCostsWriteNothing() async throws {
        _ = try await perSecond10(0)
        #expect(try await client.send("EXISTS", key).int == 0, "cost 0 must not create the key")
        _ = try await perSecond10(11)
        #expect(try await client.send("EXISTS", key).int == 0, "cost > burst must not create the key")
        _ = try await perSecond10(10)
        let state = try await client.send("GET", key)
        let denied = try await perSecond10(1)
        #expect(denied.allowed == 0)
        #expect(try await client.send("GET", key) == state, "a denial must not move the TAT")
        _ = try await perSecond10(0)
        #expect(try await client.send("GET", key) == state)
    }

    @Test func stateIsIntegerMicrosecondsOfRedisTime() async throws {
        let before = try await redisMicroseconds()
        _ = try await perSecond10(1)
        let after = try await redisMicroseconds()
        let tat = try #require(try await client.send("GET", key).string)
        #expect(tat.allSatisfy { $0.isNumber })
        // TAT = Redis' now at the call + one emission interval (100 000 µs).
        let stored = try #require(Int(tat))
        #expect(stored >= before + 100_000 && stored <= after + 100_000)
    }

    private func redisMicroseconds() async throws -> Int {
        let time = try #require(try await client.send("TIME").array)
        return try #require(time[0].int) * 1_000_000 + (try #require(time[1].int))
    }

    @Test func ttlIsCeilOfResetAfter() async throws {
        let r = try await allowN(key, burst: 100, rate: 1, period: 60, cost: 50)
        #expect(abs(r.resetAfter - 3000) < 0.01)
        let ttl = try #require(try await client.send("TTL", key).int)
        #expect((2999...3000).contains(ttl))
        let short = try await perSecond10Key("\(key):short")
        let pttl = try #require(try await client.send("PTTL", "\(key):short").int)
        #expect(short.resetAfter < 1 && pttl > 0 && pttl <= 1000)
    }

    private func perSecond10Key(_ other: String) async throws -> Reply {
        try await allowN(other, burst: 10, rate: 10, period: 1, cost: 1)
    }

    /// Arguments: charge and allowance (µs, hexadecimal).
    @Test(arguments: [
        ["-1", "f4240"], ["0.5", "f4240"], ["nan", "f4240"], ["x", "f4240"], ["inf", "f4240"], ["", "f4240"],
        ["8000000000000", "f4240"], ["zz", "f4240"],
        ["186a0", "0"], ["186a0", "-1"], ["186a0", "1.5"], ["186a0", "xyz"], ["186a0", "nan"], ["186a0", ""],
        ["186a0", "8000000000000"], ["186a0", "ffffffffffffffff"],
        ["186a0"], ["186a0", "f4240", "5"], ["1", "2", "3", "4"], [],
    ])
    func invalidArgumentsLeaveTheKeyUntouched(arguments: [String]) async throws {
        let key = "\(self.key):\(arguments.joined(separator: ","))"
        _ = try await client.send("SET", key, "1000", "EX", "100")
        let error = await #expect(throws: RedisError.self) {
            try await client.evaluate(RateLimiter.script, keys: [key], arguments: arguments)
        }
        #expect(error?.description.contains("ERR gcra:") == true)
        #expect(try await client.send("GET", key).string == "1000")
        #expect((try await client.send("TTL", key).int ?? 0) > 90)
    }

    @Test func anInvalidSecondPolicyLeavesTheFirstUntouched() async throws {
        await #expect(throws: RedisError.self) {
            try await client.evaluate(
                RateLimiter.script, keys: ["\(key):a", "\(key):b"], arguments: ["186a0", "f4240", "186a0", "0"])
        }
        #expect(try await client.send("EXISTS", "\(key):a").int == 0)
    }

    @Test func multiPolicyIsAllOrNothing() async throws {
        // 10 per minute with burst 20 (no refill during the test), and a quota of 5 per day.
        let limits = [Limit(burst: 20, rate: 10, period: 60), Limit(burst: 5, rate: 5, period: 86_400)]
        let arguments = limits.flatMap { $0.arguments(cost: 1) }
        let keys = ["\(key):rate", "\(key):daily"]
        for _ in 0..<5 {
            let reply = try await client.evaluate(RateLimiter.script, keys: keys, arguments: arguments)
            #expect(try fields(reply, limits: limits, cost: 1).admitted)
        }
        let rateState = try await client.send("GET", keys[0])
        let denied = try fields(try await client.evaluate(RateLimiter.script, keys: keys, arguments: arguments), limits: limits, cost: 1)
        #expect(!denied.admitted)
        #expect(denied.decisive == 1, "the daily quota decided")
        #expect(denied.perPolicy[1].retryAfter > 86_000 / 5 - 100)
        #expect(try await client.send("GET", keys[0]) == rateState, "the rate policy must not be charged")
        #expect(denied.perPolicy[0].remaining == 15, "the rate policy still has 15 of 20")
    }

    @Test func aReservationWithinTheHorizonIsChargedLikeAnAdmission() async throws {
        // Burst 1 per second: the second request's slot is about one second away.
        let limit = Limit(burst: 1, rate: 1, period: 1)
        let withHorizon = limit.arguments(cost: 1, horizon: 2_000_000)
        _ = try fields(try await client.evaluate(RateLimiter.script, keys: [key], arguments: withHorizon), limits: [limit], cost: 1)
        let reserved = try fields(try await client.evaluate(RateLimiter.script, keys: [key], arguments: withHorizon), limits: [limit], cost: 1)
        #expect(reserved.admitted)
        // The TAT now holds both requests; the reserved one's slot is TAT − tolerance.
        #expect((900_000...1_000_000).contains(reserved.tats[0] - limit.tolerance - reserved.now))
        #expect(try await client.send("GET", key).int == reserved.tats[0])
        let beyond = try fields(
            try await client.evaluate(RateLimiter.script, keys: [key], arguments: limit.arguments(cost: 1, horizon: 1_000_000)),
            limits: [limit], cost: 1)
        #expect(!beyond.admitted, "a slot beyond the horizon is refused")
        #expect(try await client.send("GET", key).int == reserved.tats[0], "and not charged")
    }

    @Test func usageIsCountedInTheSameCallPerHourAndReason() async throws {
        // A rate policy (2 at once) and a daily quota (3 a day): 2 admitted (cost 2 each), then
        // refused by the rate policy, then by the quota once the rate has room again.
        let limits = [Limit(burst: 2, rate: 1, period: 1), Limit(burst: 3, rate: 3, period: 86_400)]
        let keys = ["\(key):rate", "\(key):daily", "\(key):usage-a", "\(key):usage-b"]
        func call(cost: Int) async throws -> Bool {
            let arguments = limits.flatMap { $0.arguments(cost: cost) } + ["u:\(cost):01"]
            return try fields(try await client.evaluate(RateLimiter.script, keys: keys, arguments: arguments), limits: limits, cost: cost).admitted
        }
        #expect(try await call(cost: 1))
        #expect(try await call(cost: 1))
        #expect(try await !call(cost: 1), "the rate policy's burst is spent")
        try await Task.sleep(for: .milliseconds(1100))
        #expect(try await call(cost: 1))
        #expect(try await !call(cost: 1), "the quota of 3 is spent")
        let time = try #require(try await client.send("TIME").array?.compactMap { $0.string.flatMap(Int.init) })
        let hour = time[0] / 3600
        for hash in keys[2...] {
            let counts = try await client.send("HGETALL", hash).array?.compactMap(\.string) ?? []
            let fields = Dictionary(uniqueKeysWithValues: stride(from: 0, to: counts.count, by: 2).map { (counts[$0], counts[$0 + 1]) })
            #expect(fields == ["\(hour):a": "3", "\(hour):c": "3", "\(hour):r": "1", "\(hour):q": "1"], "\(hash): \(fields)")
            let ttl = try #require(try await client.send("TTL", hash).int)
            #expect(ttl > 34 * 86_400 && ttl <= 35 * 86_400, "kept 35 days: \(ttl)")
        }
        // A malformed usage argument changes nothing.
        for bad in ["u:1", "u:x:01", "u:1:0", "v:1:01"] {
            await #expect(throws: RedisError.self) {
                try await client.evaluate(RateLimiter.script, keys: keys, arguments: limits.flatMap { $0.arguments(cost: 1) } + [bad])
            }
        }
    }
}
