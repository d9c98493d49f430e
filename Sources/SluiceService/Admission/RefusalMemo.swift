import HTTPTypes
import Hummingbird
import SluiceCore
import SluiceLimiter

/// The last proven `429` of each limiter key, as sent: a flood from one key is refused with the
/// same bytes again and again, so the next refusal whose visible values are the same is answered
/// with those bytes instead of writing its problem, headers and body anew.
///
/// Why it cannot answer wrongly: an answer is reused only when everything it was written from is
/// equal — the limiter key, the deciding policy, each policy's remaining count, its whole seconds
/// until reset and whether it was violated, the whole seconds of `Retry-After` and the request's
/// path (the problem's `instance`). A refusal with `retry_after_jitter` is random by design and
/// never reused. Those values change at most once a second for a key held at zero, so a flood
/// costs one answer written per key per second.
final class RefusalMemo: Sendable {
    /// What an answer was written from, per policy, in the decision's order.
    private struct PolicyShape: Sendable, Equatable {
        var policy: Policy
        var remaining: Int
        var resetSeconds: Int
        var violated: Bool

        init(_ state: Decision.PolicyState) {
            policy = state.policy
            remaining = state.remaining
            resetSeconds = Admission.wholeSeconds(state.resetAfter, minimum: 0)
            violated = state.retryAfter != nil
        }
    }

    private struct Entry: Sendable {
        var deciding: Policy
        var states: [PolicyShape]
        var retryAfter: Int
        var origin: Decision.Origin
        var path: String
        var headers: HTTPFields
        var body: ByteBuffer

        func answers(_ decision: Decision, retryAfter: Int, path: String) -> Bool {
            self.retryAfter == retryAfter && origin == decision.origin && deciding == decision.policy && self.path == path
                && states.elementsEqual(decision.states) { $0 == PolicyShape($1) }
        }
    }

    private let entries: SharedLRUCache<String, Entry>

    /// `capacity`: limiter keys remembered (the least recently refused is forgotten first).
    init(capacity: Int = 4096) {
        entries = SharedLRUCache(capacity: capacity)
    }

    /// The `429` refusing `decision` (a denial: its `retryAfter` is set) of a request to `path`,
    /// reused when the key's last one was written from the same values.
    func response(refusing decision: Decision, path: String, jitter: Double) -> Response {
        let retryAfter = Admission.wholeSeconds(decision.retryAfter ?? .seconds(1))
        if jitter == 0, let known = entries.get(decision.key), known.answers(decision, retryAfter: retryAfter, path: path) {
            return Response(status: .tooManyRequests, headers: known.headers, body: .init(byteBuffer: known.body))
        }
        let problem = Admission.rateLimited(decision, detail: Admission.rateLimitDetail(decision), jitter: jitter)
        let (headers, body) = problem.answer(instance: path)
        if jitter == 0 {
            entries.set(
                decision.key,
                Entry(
                    deciding: decision.policy, states: decision.states.map(PolicyShape.init), retryAfter: retryAfter, origin: decision.origin,
                    path: path, headers: headers, body: body))
        }
        return Response(status: .tooManyRequests, headers: headers, body: .init(byteBuffer: body))
    }
}
