import Foundation
import SluiceRedis
import SluiceTestSupport
import Testing

@testable import SluiceLimiter

@Suite("Degraded mode's own limiter, charged back into a real redis-server")
struct DegradedLimiterTests {
    let key = "dg\(UUID().uuidString.prefix(8).lowercased())"

    @Test func eachReplicaAdmitsItsShareAndChargesItsDebtBack() async throws {
        let limiter = RateLimiter(client: try RedisServer.sharedClient(), localDenial: LocalDenial())
        defer { (limiter.client as? RedisClient)?.shutdown() }
        let policy = Policy(rate: 30, period: .seconds(60), burst: 30)
        let degraded = DegradedLimiter()
        // A third of burst 30 on each of three replicas: 10 at once, then refused.
        let decisions = (0..<12).map { _ in degraded.check(key: key, policies: [policy], cost: 1, horizon: .zero, replicas: 3) }
        #expect(decisions.prefix(10).allSatisfy { $0.isAllowed && $0.origin == .degraded })
        let refused = decisions[10]
        #expect(!refused.isAllowed && refused.retryAfter != nil)
        // One request per 2 s globally is one per 6 s for a third of the fleet.
        #expect(refused.retryAfter! > .seconds(5) && refused.retryAfter! <= .seconds(6), "\(refused.retryAfter!)")
        // Held within a horizon, as `delay` keys are.
        #expect(degraded.check(key: key, policies: [policy], cost: 1, horizon: .seconds(7), replicas: 3).delay > .seconds(5))

        // Redis answers again: the 11 admitted (not yet paid for by time) are charged into its state.
        #expect(try await limiter.check(key: key, policies: [policy], cost: 0).remaining == 30)
        #expect(await degraded.chargeBack(limiter: limiter) == 1)
        #expect(degraded.pendingKeys == 0)
        let after = try await limiter.check(key: key, policies: [policy], cost: 0)
        #expect(after.remaining == 19, "30 less the 11 admitted locally: \(after.remaining)")
        #expect(await degraded.chargeBack(limiter: limiter) == 0, "nothing twice")
    }

    @Test func theBreakerOpensAfterConsecutiveFailuresAndClosesOnSuccess() {
        let changes = Shared([CircuitBreaker.State]())
        let breaker = CircuitBreaker(failureThreshold: 3) { state in changes.value.withLock { $0.append(state) } }
        breaker.recordFailure()
        breaker.recordFailure()
        breaker.recordSuccess()  // not consecutive
        breaker.recordFailure()
        breaker.recordFailure()
        #expect(!breaker.isOpen)
        breaker.recordFailure()
        #expect(breaker.isOpen)
        breaker.recordFailure()
        breaker.recordSuccess()
        #expect(!breaker.isOpen)
        #expect(changes.value.withLock { $0 } == [.open, .closed])
    }

    @Test func aRefusedConnectionOpensTheBreakerAtOnceATimeoutCountsOnce() async throws {
        let breaker = CircuitBreaker(failureThreshold: 3)
        breaker.record(.server("ERR gcra: something"))
        breaker.record(.timedOut(endpoint: "x"))
        breaker.record(.timedOut(endpoint: "x"))
        #expect(!breaker.isOpen, "Redis answering an error is no outage; two timeouts are not three")
        // A real refusal: a port nothing listens on.
        let port = try RedisServer.freePort()
        let client = RedisClient(configuration: RedisConfiguration(endpoint: .tcp(host: "127.0.0.1", port: port)))
        defer { client.shutdown() }
        do {
            _ = try await client.send("PING")
            Issue.record("nothing listens on \(port)")
        } catch {
            breaker.record(error)
        }
        #expect(breaker.isOpen, "connection refused: an outage at once")
    }
}
