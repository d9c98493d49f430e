import Foundation
import Logging
import SluiceCore
import SluiceRedis
import SluiceTestSupport
import Synchronization
import Testing

@_spi(Benchmarks) @testable import SluiceLimiter

@Suite("RateLimiter against a real redis-server")
struct RateLimiterTests {
    let limiter: RateLimiter
    let key = "k\(UUID().uuidString.prefix(8).lowercased())"

    init() throws {
        limiter = RateLimiter(client: try RedisServer.sharedClient())
    }

    @Test func burstThenDenyThenAdmitAfterRetryAfter() async throws {
        let policy = Policy(rate: 10, period: .seconds(1), burst: 5)
        for expected in (0..<5).reversed() {
            let decision = try await limiter.check(key: key, policies: [policy])
            #expect(decision.isAllowed && decision.remaining == expected && decision.retryAfter == nil)
        }
        let denied = try await limiter.check(key: key, policies: [policy])
        #expect(!denied.isAllowed)
        #expect(denied.limit == 5 && denied.policy == policy)
        let retryAfter = try #require(denied.retryAfter)
        // ≈ period / rate = 100 ms, less the time the five checks took.
        #expect(retryAfter > .milliseconds(50) && retryAfter <= .milliseconds(100))
        try await Task.sleep(for: retryAfter + .milliseconds(5))
        #expect(try await limiter.check(key: key, policies: [policy]).isAllowed)
    }

    @Test func concurrentChecksFromTwoClientsAdmitExactlyTheBurst() async throws {
        // Two clients stand for two replicas; refill is negligible (1 per hour).
        let other = RateLimiter(client: try RedisServer.sharedClient())
        defer { (other.client as? RedisClient)?.shutdown() }
        let policy = Policy(rate: 1, period: .seconds(3600), burst: 100)
        let admitted = Counter()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for task in 0..<10 {
                let replica = task.isMultiple(of: 2) ? limiter : other
                group.addTask {
                    for _ in 0..<50 where try await replica.check(key: key, policies: [policy]).isAllowed {
                        admitted.increment()
                    }
                }
            }
            try await group.waitForAll()
        }
        #expect(admitted.value == 100)
    }

    @Test func sustainedLoadNeverExceedsBurstPlusRateTimesElapsed() async throws {
        let policy = Policy(rate: 50, period: .seconds(1), burst: 5)
        let admitted = Counter()
        let clock = ContinuousClock()
        let started = clock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<8 {
                group.addTask {
                    while clock.now - started < .milliseconds(1500) {
                        if try await limiter.check(key: key, policies: [policy]).isAllowed { admitted.increment() }
                    }
                }
            }
            try await group.waitForAll()
        }
        let elapsed = (clock.now - started).seconds
        let allowance = 5 + 50 * elapsed
        #expect(Double(admitted.value) <= allowance.rounded(.up), "admitted \(admitted.value), allowance \(allowance)")
        #expect(Double(admitted.value) >= 0.9 * (5 + 50 * 1.5), "admitted \(admitted.value)")
    }

    @Test func multiPolicyDecisionNamesTheDecidingPolicy() async throws {
        let perSecond = Policy(name: "default", rate: 10, period: .seconds(60), burst: 20)
        let daily = Policy.daily(3)
        for _ in 0..<3 { #expect(try await limiter.check(key: key, policies: [perSecond, daily]).isAllowed) }
        let denied = try await limiter.check(key: key, policies: [perSecond, daily])
        #expect(!denied.isAllowed && denied.policy == daily)
        #expect(denied.states.map(\.policy) == [perSecond, daily])
        #expect(denied.states[0].remaining == 17 && denied.states[0].retryAfter == nil)
        #expect(denied.states[1].remaining == 0 && denied.states[1].retryAfter != nil)
    }

    @Test func costZeroInspectsAndCostAboveBurstCanNeverPass() async throws {
        let policy = Policy(rate: 10, period: .seconds(1), burst: 10)
        let peek = try await limiter.check(key: key, policies: [policy], cost: 0)
        #expect(peek.isAllowed && peek.remaining == 10)
        let huge = try await limiter.check(key: key, policies: [policy], cost: 11)
        #expect(!huge.isAllowed && huge.retryAfter == nil)
        #expect(try await limiter.check(key: key, policies: [policy], cost: 10).isAllowed)
    }

    @Test func keysAreHashTaggedPerAPIKey() async throws {
        let policy = Policy(name: "default", rate: 1)
        #expect(limiter.redisKey(for: "abc123", policy: policy) == "sluice:rl:{abc123}:default")
        _ = try await limiter.check(key: key, policies: [policy])
        #expect(try await limiter.client.send("EXISTS", "sluice:rl:{\(key)}:default").int == 1)
        try await limiter.reset(key: key, policies: [policy])
        #expect(try await limiter.client.send("EXISTS", "sluice:rl:{\(key)}:default").int == 0)
    }

    @Test func invalidArgumentsNeverReachRedis() async throws {
        let policy = Policy(rate: 1)
        await #expect(throws: RateLimitError.self) { try await limiter.check(key: "a{b}", policies: [policy]) }
        await #expect(throws: RateLimitError.self) { try await limiter.check(key: key, policies: []) }
        await #expect(throws: RateLimitError.self) { try await limiter.check(key: key, policies: [policy, policy]) }
        await #expect(throws: RateLimitError.self) { try await limiter.check(key: key, policies: [Policy(rate: 0)]) }
        await #expect(throws: RateLimitError.self) { try await limiter.check(key: key, policies: [policy], cost: -1) }
        await #expect(throws: RateLimitError.self) {
            try await limiter.check(key: key, policies: [Policy(name: "Bad Name", rate: 1)])
        }
    }

    @Test func redisDownIsAnError() async throws {
        let server = try RedisServer()
        var configuration = server.configuration()
        configuration.commandTimeout = .milliseconds(200)
        let isolated = RateLimiter(client: RedisClient(configuration: configuration, logger: Logger(label: "test")))
        defer { (isolated.client as? RedisClient)?.shutdown() }
        #expect(try await isolated.check(key: key, policies: [Policy(rate: 1)]).isAllowed)
        server.stop()
        let error = await #expect(throws: RateLimitError.self) {
            try await isolated.check(key: key, policies: [Policy(rate: 1)])
        }
        guard case .redis(let redisError) = error else { throw TestSupportError("expected a Redis error, got \(String(describing: error))") }
        #expect(redisError.isUnavailable)
    }

    // MARK: Faults: lost writes, lost replies

    @Test func aStateThatLostWritesIsRepairedFromTheLastReply() async throws {
        // A failover that lost the master's last writes, as the next replica call sees it: the
        // state is gone, but this replica's last reply proved the TAT (its floor).
        let limiter = RateLimiter(client: try RedisServer.sharedClient(), localDenial: LocalDenial())
        let policy = Policy(rate: 1, period: .seconds(3600), burst: 3)
        for _ in 0..<3 { #expect(try await limiter.check(key: key, policies: [policy]).isAllowed) }
        _ = try await limiter.client.send(RedisCommand("DEL", limiter.redisKey(for: key, policy: policy)))
        let after = try await limiter.check(key: key, policies: [policy], cost: 0)
        #expect(after.origin == .redis && after.remaining == 0, "repaired: nothing left of the burst")
        #expect(try await limiter.client.send(RedisCommand("EXISTS", limiter.redisKey(for: key, policy: policy))).int == 1)
        // A replica that never saw a reply for the key (no floor) is refused too: the state was repaired.
        let other = RateLimiter(client: try RedisServer.sharedClient())
        #expect(try await !other.check(key: key, policies: [policy]).isAllowed)
    }

    @Test func aRetryOfACallWhoseReplyWasLostIsNotChargedTwice() async throws {
        // Redis busy for 0.6 s (DEBUG SLEEP on another connection) while a call waits 0.2 s at
        // most: its reply is lost to a timeout, yet the script runs once Redis wakes up.
        var configuration = try RedisConfiguration(url: RedisServer.sharedURL)
        configuration.commandTimeout = .milliseconds(200)
        let limiter = RateLimiter(client: RedisClient(configuration: configuration))
        let policy = Policy(rate: 1, period: .seconds(3600), burst: 2)
        let sleeper = try RedisServer.sharedClient()
        async let slept = sleeper.send("DEBUG", "SLEEP", "0.6")
        try await Task.sleep(for: .milliseconds(100))
        await #expect(throws: RateLimitError.self) { try await limiter.check(key: key, policies: [policy], requestID: "lost") }
        _ = try await slept
        // The retry gets the first decision again: charged once, so one more request fits.
        let retried = try await limiter.check(key: key, policies: [policy], requestID: "lost")
        #expect(retried.isAllowed && retried.remaining == 1)
        #expect(try await limiter.check(key: key, policies: [policy]).isAllowed)
        #expect(try await !limiter.check(key: key, policies: [policy]).isAllowed, "the burst of 2 is spent: 2 requests, 2 charges")
    }

}

@Suite("Reservations within a horizon")
struct ReservationTests {
    let limiter: RateLimiter
    let key = "r\(UUID().uuidString.prefix(8).lowercased())"

    init() throws {
        limiter = RateLimiter(client: try RedisServer.sharedClient())
    }

    @Test func slotsAreSpacedByTheEmissionIntervalUpToTheHorizon() async throws {
        let policy = Policy(rate: 10, period: .seconds(1), burst: 1)
        let first = try await limiter.check(key: key, policies: [policy], horizon: .milliseconds(350))
        #expect(first.isAllowed && first.delay == .zero)
        var delays: [Duration] = []
        for _ in 0..<3 {
            let reserved = try await limiter.check(key: key, policies: [policy], horizon: .milliseconds(350))
            #expect(reserved.isAllowed && reserved.retryAfter == nil)
            delays.append(reserved.delay)
        }
        // 100, 200, 300 ms after the first, less the few ms the calls took.
        for (index, delay) in delays.enumerated() {
            let expected = Duration.milliseconds(100 * (index + 1))
            #expect(delay <= expected && delay > expected - .milliseconds(40), "slot \(index + 1): \(delay)")
        }
        let state = try await limiter.client.send("GET", limiter.redisKey(for: key, policy: policy))
        let beyond = try await limiter.check(key: key, policies: [policy], horizon: .milliseconds(350))
        #expect(!beyond.isAllowed && beyond.delay == .zero)
        #expect(try #require(beyond.retryAfter) > .milliseconds(350))
        #expect(try await limiter.client.send("GET", limiter.redisKey(for: key, policy: policy)) == state, "a refusal writes nothing")
        let oversized = try await limiter.check(key: "\(key)x", policies: [policy], cost: 2, horizon: .seconds(60))
        #expect(!oversized.isAllowed, "a cost above the burst is never reserved")
    }

    @Test func immediateAndDeferredAdmissionsNeverExceedBurstPlusRateTimesWindow() async throws {
        // 20/s with burst 3, a 0.5 s horizon, 6 callers hammering for 1.5 s.
        let policy = Policy(rate: 20, period: .seconds(1), burst: 3)
        let clock = ContinuousClock()
        let started = clock.now
        let slots = SlotLog()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<6 {
                group.addTask {
                    while clock.now - started < .milliseconds(1500) {
                        let decision = try await limiter.check(key: key, policies: [policy], horizon: .milliseconds(500))
                        if decision.isAllowed { slots.append(decision.slotTime) }
                    }
                }
            }
            try await group.waitForAll()
        }
        // Slots on Redis' clock (decision time + delay), exact to the microsecond: no slack.
        let sorted = slots.all.sorted()
        #expect(sorted.count >= 30)
        for window in [Int64(50_000), 100_000, 250_000, 500_000, 1_000_000] {
            var worst = 0
            var low = 0
            for high in sorted.indices {
                while sorted[high] - sorted[low] > window { low += 1 }
                worst = max(worst, high - low + 1)
            }
            let allowance = 3 + 20 * Double(window) / 1_000_000
            #expect(Double(worst) <= allowance, "\(worst) slots in a \(window) µs window, allowance \(allowance)")
        }
    }
}

@Suite("Policy encoding")
struct PolicyTests {
    @Test func emissionIntervalIsWholeMicrosecondsRoundedUp() {
        #expect(Policy(rate: 1, period: .seconds(1)).emissionIntervalMicroseconds == 1_000_000)
        #expect(Policy(rate: 3, period: .seconds(1)).emissionIntervalMicroseconds == 333_334)
        #expect(Policy(rate: 1_000_000_000, period: .seconds(1)).emissionIntervalMicroseconds == 1)
        #expect(Policy(rate: 1, period: .microseconds(1)).emissionIntervalMicroseconds == 1)
        #expect(Policy.daily(5).emissionIntervalMicroseconds == 17_280_000_000)
    }

    @Test func jsonUsesSecondsAndDefaultsBurstToRate() throws {
        let policy = try JSONDecoder().decode(Policy.self, from: Data(#"{"name":"default","rate":10,"period":0.5}"#.utf8))
        #expect(policy == Policy(name: "default", rate: 10, period: .milliseconds(500), burst: 10))
        let encoded = try JSONEncoder().encode(Policy(rate: 3, period: .seconds(2), burst: 7))
        let object = try #require(try JSONSerialization.jsonObject(with: encoded) as? [String: Any])
        #expect(object["period"] as? Double == 2 && object["burst"] as? Int == 7)
        #expect(throws: DecodingError.self) {
            try JSONDecoder().decode(Policy.self, from: Data(#"{"rate":10,"period":-1}"#.utf8))
        }
    }

    @Test func decodeRejectsMalformedReplies() {
        let policy = Policy(rate: 1)
        func reply(_ text: String) -> RedisReply { .bulkString(Array(text.utf8)) }
        #expect(throws: RateLimitError.self) { try RateLimiter.decode(.array([.integer(1)]), policies: [policy], cost: 1) }
        #expect(throws: RateLimitError.self) { try RateLimiter.decode(.null, policies: [policy], cost: 1) }
        for text in [
            "", "1 10", "2 10 0 12000000", "1 10 0 12000000 5", "1 10 0 12000000 ", "1 10 x 12000000", "1 10 1000000 12000000",
            "1 -10 0 12000000", "1 10 0 9000000", "1  10 0 12000000", "1 10 0 1234567890123456789",
        ] {
            #expect(throws: RateLimitError.self, "\(text)") { try RateLimiter.decode(reply(text), policies: [policy], cost: 1) }
        }
        // A TAT before Redis' own time cannot come from the script: a denial's stored TAT is its
        // charged TAT less the charge (one second for this policy).
        #expect(throws: RateLimitError.self) { try RateLimiter.decode(reply("0 10 0 10500000"), policies: [policy], cost: 1) }
    }

    @Test func decodeDerivesEveryFieldFromTheTATs() throws {
        // 10 per second, burst 10: interval 100 ms, tolerance 1 s. Redis' time 10 s.
        let policy = Policy(rate: 10, burst: 10)
        func reply(_ text: String) -> RedisReply { .bulkString(Array(text.utf8)) }
        let admitted = try RateLimiter.decode(reply("1 10 0 10300000"), policies: [policy], cost: 1)
        #expect(admitted.isAllowed && admitted.remaining == 7 && admitted.retryAfter == nil && admitted.delay == .zero)
        #expect(admitted.resetAfter == .milliseconds(300) && admitted.decidedAt == 10_000_000 && admitted.states[0].tat == 10_300_000)
        // Charged to 11.2 s: 200 ms past the tolerance, so the slot is 200 ms away.
        let reserved = try RateLimiter.decode(reply("1 10 0 11200000"), policies: [policy], cost: 1)
        #expect(reserved.isAllowed && reserved.remaining == 0 && reserved.delay == .milliseconds(200))
        // Denied at a stored 11 s: it would have been charged to 11.1 s, 100 ms after the tolerance.
        let denied = try RateLimiter.decode(reply("0 10 0 11100000"), policies: [policy], cost: 1)
        #expect(!denied.isAllowed && denied.remaining == 0 && denied.retryAfter == .milliseconds(100))
        #expect(denied.resetAfter == .seconds(1) && denied.states[0].tat == 11_000_000)
        // Two policies: denied by the one with the longest wait, admitted by the one with fewest left.
        let daily = Policy.daily(5)
        let both = try RateLimiter.decode(reply("0 10 0 10100000 103690000000"), policies: [policy, daily], cost: 1)
        #expect(both.policy == daily && both.states[0].retryAfter == nil && both.retryAfter == .seconds(17_280))
        let oversized = try RateLimiter.decode(reply("0 10 0 12100000"), policies: [policy], cost: 11)
        #expect(oversized.retryAfter == nil, "a cost above the burst is never admitted")
    }
}

/// Slot times collected from several tasks.
final class SlotLog: Sendable {
    private let slots = Mutex<[Int64]>([])

    func append(_ slot: Int64) { slots.withLock { $0.append(slot) } }

    var all: [Int64] { slots.withLock { $0 } }
}
