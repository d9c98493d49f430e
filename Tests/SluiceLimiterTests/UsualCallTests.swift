import Foundation
import SluiceCore
import SluiceRedis
import SluiceTestSupport
import Synchronization
import Testing

@_spi(Benchmarks) @testable import SluiceLimiter

/// What the limiter sends, as a recording wrapper of the real client sees it.
final class RecordingRedis: RedisCommands {
    let inner: RedisClient
    private let recorded = Mutex<[ScriptCall]>([])

    init(_ inner: RedisClient) { self.inner = inner }

    var calls: [ScriptCall] { recorded.withLock { $0 } }
    var layoutEpoch: Int { inner.layoutEpoch }

    func send(_ command: RedisCommand) async throws(RedisError) -> RedisReply { try await inner.send(command) }

    func evaluate(_ script: RedisScript, _ call: ScriptCall) async throws(RedisError) -> RedisReply {
        recorded.withLock { $0.append(call) }
        return try await inner.evaluate(script, call)
    }
}

@Suite("The limiter's remembered call against a real redis-server")
struct UsualCallTests {
    /// One key checked with changing costs, horizons, policy values and usage: every call sent is
    /// the one built afresh from that check's own values, never one remembered from another.
    @Test func everyCallIsTheOneBuiltForItsCheck() async throws {
        let redis = RecordingRedis(try RedisServer.sharedClient())
        defer { redis.inner.shutdown() }
        let limiter = RateLimiter(client: redis)
        let key = "k\(UUID().uuidString.prefix(8).lowercased())"
        let minute = Policy(name: "minute", rate: 600, period: .seconds(60), burst: 100)
        let variants = [
            [minute], [Policy(name: "minute", rate: 300, period: .seconds(60), burst: 100)],
            [Policy(name: "minute", rate: 600, period: .seconds(60), burst: 50)], [minute, Policy(name: "hour", rate: 1000, period: .seconds(3600))],
        ]
        let draws = (cost: [1, 1, 2, 1, 3], horizon: [Duration.zero, .zero, .seconds(1)], usage: [[String](), [""], [""]])
        var expected: [ScriptCall] = []
        for round in 0..<80 {
            // The last 20: only the policies' values change from one check to the next.
            let policies = round < 60 ? variants[round / 3 % variants.count] : variants[round % variants.count]
            let cost = round < 60 ? draws.cost[round % draws.cost.count] : 1
            let horizon = round < 60 ? draws.horizon[round % draws.horizon.count] : .zero
            let usage = round < 60 ? draws.usage[round / 2 % draws.usage.count] : []
            _ = try await limiter.check(key: key, policies: policies, cost: cost, horizon: horizon, usage: usage)
            let keys = policies.map { limiter.redisKey(for: key, policy: $0) } + usage.map { Keyspace.usage(key, tag: $0, day: UsageDay.today()) }
            expected.append(
                ScriptCall(keys: keys, arguments: RateLimiter.arguments(policies: policies, cost: cost, horizon: horizon, usage: !usage.isEmpty)))
        }
        #expect(redis.calls == expected)
        #expect(Set(expected.map { "\($0)" }).count > 10, "the checks differ in what they send")
    }
}
