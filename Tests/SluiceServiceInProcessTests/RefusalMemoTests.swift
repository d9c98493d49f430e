import HTTPTypes
import Hummingbird
import Testing

@testable import SluiceLimiter
@testable import SluiceService

@Suite("A flood's refusals reused")
struct RefusalMemoTests {
    /// Decisions drawn from small sets, so that consecutive ones often agree on all but one value.
    static func decision(_ draws: inout SeededDraws) -> Decision {
        let policies = [
            Policy(name: "default", rate: 1, period: .seconds(3600), burst: 1),
            Policy(name: "default", rate: 1, period: .seconds(3600), burst: 2),
            Policy(name: "minute", rate: 60, period: .seconds(60), burst: 10),
            { var owned = Policy(name: "minute", rate: 60, period: .seconds(60), burst: 10); owned.owner = .key("k1"); return owned }(),
            { var owned = Policy(name: "minute", rate: 60, period: .seconds(60), burst: 10); owned.owner = .tenant; return owned }(),
        ]
        let seconds: [Duration] = [.milliseconds(300), .seconds(1), .milliseconds(1200), .milliseconds(3_599_700)]
        let states = (0...draws.below(2)).map { _ in
            Decision.PolicyState(
                policy: draws.pick(policies), remaining: draws.below(2), retryAfter: draws.below(3) == 0 ? nil : draws.pick(seconds),
                resetAfter: draws.pick(seconds))
        }
        var decision = Decision(
            isAllowed: false, policy: draws.pick(states).policy, remaining: 0, retryAfter: draws.pick(seconds),
            resetAfter: draws.pick(seconds), states: states)
        decision.origin = draws.pick([.localDenial, .localDenial, .degraded])
        decision.key = draws.pick(["k1", "k2"])
        return decision
    }

    static func bytes(of response: Response) async throws -> [UInt8] {
        let writer = CollectingWriter()
        try await response.body.write(writer)
        return writer.bytes
    }

    /// Whatever came before, each answer is the one written afresh for its decision: a value the
    /// memo's comparison left out would be answered from an earlier refusal here.
    @Test func everyAnswerIsTheOneWrittenAfresh() async throws {
        let memo = RefusalMemo(capacity: 2)
        var draw = SeededDraws(state: 23)
        var reused = 0
        var previous: [UInt8] = []
        for _ in 0..<20_000 {
            let decision = Self.decision(&draw)
            let path = draw.pick(["/v1/predict", "/v1/predict", "/v1/other"])
            let answer = memo.response(refusing: decision, path: path, jitter: 0)
            let fresh = RefusalMemo().response(refusing: decision, path: path, jitter: 0)
            let bytes = try await Self.bytes(of: answer)
            #expect(answer.status == .tooManyRequests)
            #expect(answer.headers == fresh.headers, "\(decision)")
            #expect(try await bytes == Self.bytes(of: fresh), "\(decision)")
            if bytes == previous { reused += 1 }
            previous = bytes
        }
        #expect(reused > 100, "the draws repeat answers often enough to exercise reuse")
    }

    /// `retry_after_jitter` makes each `Retry-After` random: never reused.
    @Test func aJitteredRefusalIsNeverReused() async throws {
        let memo = RefusalMemo()
        var draw = SeededDraws(state: 7)
        let decision = Self.decision(&draw)
        let waits = Set((0..<200).map { _ in memo.response(refusing: decision, path: "/v1/predict", jitter: 30).headers[.retryAfter] })
        #expect(waits.count > 1, "\(waits)")
    }
}
