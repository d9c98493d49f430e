import Crypto
import Foundation
import HTTPTypes
import SluiceCore
import SluiceLimiter

/// How a decision reaches the client: the `429` problem, `Retry-After`, and the `RateLimit`
/// headers of draft-ietf-httpapi-ratelimit-headers-10.
extension Admission {
    static func rateLimitDetail(_ decision: Decision) -> String {
        "Rate limit '\(decision.policy.name)' exceeded; retry after the given time."
    }

    /// A `429` for `decision`: `Retry-After` is the true wait rounded up, plus a uniform extra in
    /// [0, `jitter`] seconds (the key's `retry_after_jitter`) — never earlier than the true wait.
    func rateLimited(_ decision: Decision, detail: String, jitter: Double = 0) -> Problem {
        let wait = decision.retryAfter ?? .seconds(1)
        let extra: Duration = jitter > 0 ? .milliseconds(Int64(Double.random(in: 0...jitter) * 1000)) : .zero
        var problem = Problem(
            status: .tooManyRequests, type: Self.quotaExceeded, title: "Too many requests", detail: detail,
            policy: decision.policy.name, retryAfter: Self.wholeSeconds(wait + extra)
        )
        problem.violatedPolicies = decision.states.filter { $0.retryAfter != nil }.map(\.policy.name)
        problem.headers = Self.headers(for: decision)
        return problem
    }

    /// The problem type of draft-ietf-httpapi-ratelimit-headers-10 for a request over a quota.
    static let quotaExceeded = "https://iana.org/assignments/http-problem-types#quota-exceeded"

    /// `RateLimit-Policy` and `RateLimit` in the form of draft-ietf-httpapi-ratelimit-headers-10:
    /// `"default";q=20;w=1;pk=:…:` (q: the burst, w: the period in seconds) and
    /// `"default";r=7;t=1;pk=:…:` (r: remaining now, t: seconds until the bucket is full again),
    /// pk: the partition key (``partitionKey(_:)``); on an admitted request also `Sluice-Slot`,
    /// its slot in Unix seconds on the limiter's clock.
    static func headers(for decision: Decision, slot: Bool = true) -> HTTPFields {
        var fields = HTTPFields()
        let pk = decision.key.isEmpty ? "" : ";pk=:\(partitionKey(decision.key)):"
        fields[.rateLimitPolicy] = decision.states.map { state in
            "\"\(state.policy.name)\";q=\(state.policy.burst);w=\(wholeSeconds(state.policy.period, minimum: 1))\(pk)"
        }.joined(separator: ", ")
        fields[.rateLimit] = decision.states.map { state in
            "\"\(state.policy.name)\";r=\(state.remaining);t=\(wholeSeconds(state.resetAfter, minimum: 0))\(pk)"
        }.joined(separator: ", ")
        if decision.origin == .degraded { fields[.sluiceDegraded] = "local" }
        if slot, decision.isAllowed, decision.decidedAt > 0 {
            // The admitted request's slot on the limiter's clock (Redis' TIME), to the µs: lets a
            // load test check admissions against the policy exactly, whatever the network jitter.
            let slot = decision.slotTime
            fields[.sluiceSlot] = "\(slot / 1_000_000).\(String(slot % 1_000_000).leftPadded(to: 6))"
        }
        return fields
    }

    /// The partition key of a limiter key, as a structured-field Byte Sequence's base64: the first
    /// 9 bytes of SHA-256 over it. It names the partition (the API key's limits, or an address's)
    /// without revealing the key id or the address.
    static func partitionKey(_ key: String) -> String {
        Data(SHA256.hash(data: Data("sluice-partition:\(key)".utf8)).prefix(9)).base64EncodedString()
    }

    /// Rounded up, and never below `minimum` (`Retry-After: 0` would invite an immediate retry).
    static func wholeSeconds(_ duration: Duration, minimum: Int = 1) -> Int {
        max(minimum, Int(duration.seconds.rounded(.up)))
    }
}
