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

    struct Reply {
        var allowed: Int, remaining: Int, retryAfter: Double, resetAfter: Double
    }

    func allowN(_ key: String, burst: Int, rate: Int, period: String, cost: Int) async throws -> Reply {
        let reply = try await client.evaluate(
            RateLimiter.script, keys: [key], arguments: [String(burst), String(rate), period, String(cost)])
        let fields = try #require(reply.array)
        return Reply(
            allowed: try #require(fields[0].int), remaining: try #require(fields[1].int),
            retryAfter: try #require(fields[2].double), resetAfter: try #require(fields[3].double))
    }

    /// redis_rate's `PerSecond(10)`: burst 10, rate 10, period 1 s.
    func perSecond10(_ cost: Int) async throws -> Reply {
        try await allowN(key, burst: 10, rate: 10, period: "1", cost: cost)
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
            let r = try await allowN(key, burst: 1, rate: 1, period: "0.001", cost: 1)
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
        let r = try await allowN(key, burst: 100, rate: 1, period: "60", cost: 50)
        #expect(abs(r.resetAfter - 3000) < 0.01)
        let ttl = try #require(try await client.send("TTL", key).int)
        #expect((2999...3000).contains(ttl))
        let short = try await perSecond10Key("\(key):short")
        let pttl = try #require(try await client.send("PTTL", "\(key):short").int)
        #expect(short.resetAfter < 1 && pttl > 0 && pttl <= 1000)
    }

    private func perSecond10Key(_ other: String) async throws -> Reply {
        try await allowN(other, burst: 10, rate: 10, period: "1", cost: 1)
    }

    @Test(arguments: [
        ["0", "10", "1", "1"], ["-1", "10", "1", "1"], ["1.5", "10", "1", "1"], ["abc", "10", "1", "1"],
        ["nan", "10", "1", "1"], ["inf", "10", "1", "1"], ["", "10", "1", "1"],
        ["10", "0", "1", "1"], ["10", "-5", "1", "1"], ["10", "2.5", "1", "1"], ["10", "1e300", "1", "1"],
        ["10", "10", "0", "1"], ["10", "10", "-1", "1"], ["10", "10", "x", "1"], ["10", "10", "nan", "1"],
        ["10", "10", "inf", "1"], ["10", "10", "0.0000001", "1"],
        ["10", "10", "1", "-1"], ["10", "10", "1", "0.5"], ["10", "10", "1", "nan"], ["10", "10", "1", "x"],
        ["10", "10", "1"], ["10", "10", "1", "1", "-1"], ["10", "10", "1", "1", "x"], ["10", "10", "1", "1", "nan"],
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
                RateLimiter.script, keys: ["\(key):a", "\(key):b"], arguments: ["10", "10", "1", "1", "10", "0", "1", "1"])
        }
        #expect(try await client.send("EXISTS", "\(key):a").int == 0)
    }

    @Test func multiPolicyIsAllOrNothing() async throws {
        // 10 per minute with burst 20 (no refill during the test), and a quota of 5 per day.
        let arguments = ["20", "10", "60", "1", "5", "5", "86400", "1"]
        let keys = ["\(key):rate", "\(key):daily"]
        for _ in 0..<5 {
            let reply = try #require(try await client.evaluate(RateLimiter.script, keys: keys, arguments: arguments).array)
            #expect(reply[0].int == 1)
        }
        let rateState = try await client.send("GET", keys[0])
        let denied = try #require(try await client.evaluate(RateLimiter.script, keys: keys, arguments: arguments).array)
        #expect(denied[0].int == 0)
        #expect(denied[4].int == 2, "the daily quota decided")
        #expect(try #require(denied[2].double) > 86_000 / 5 - 100)
        #expect(try await client.send("GET", keys[0]) == rateState, "the rate policy must not be charged")
        #expect(denied[5].int == 15, "the rate policy still has 15 of 20")
    }
}
