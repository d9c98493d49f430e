import Crypto
import Foundation
import HTTPTypes
import SluiceCore
import SluiceLimiter
import Synchronization

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
        problem.violatedPolicies = decision.states.compactMap { $0.retryAfter != nil ? $0.policy.name : nil }
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
        // Built by appending (one string per field): this runs on every answer.
        let pk = decision.key.isEmpty ? "" : partitionKeyParameter(decision.key)
        var policy = "", state = ""
        policy.reserveCapacity(decision.states.count * (40 + pk.utf8.count))
        state.reserveCapacity(decision.states.count * (40 + pk.utf8.count))
        for (index, entry) in decision.states.enumerated() {
            if index > 0 {
                policy += ", "
                state += ", "
            }
            let name = entry.policy.name
            policy += "\""
            policy += name
            policy += "\";q="
            policy += String(entry.policy.burst)
            policy += ";w="
            policy += String(wholeSeconds(entry.policy.period, minimum: 1))
            policy += pk
            state += "\""
            state += name
            state += "\";r="
            state += String(entry.remaining)
            state += ";t="
            state += String(wholeSeconds(entry.resetAfter, minimum: 0))
            state += pk
        }
        fields[.rateLimitPolicy] = policy
        fields[.rateLimit] = state
        if decision.origin == .degraded { fields[.sluiceDegraded] = "local" }
        if slot, decision.isAllowed, decision.decidedAt > 0 {
            // The admitted request's slot on the limiter's clock (Redis' TIME), to the µs: lets a
            // load test check admissions against the policy exactly, whatever the network jitter.
            let slot = decision.slotTime
            fields[.sluiceSlot] = String(slot / 1_000_000) + "." + String(slot % 1_000_000).leftPadded(to: 6)
        }
        return fields
    }

    /// The partition key of a limiter key, as a structured-field Byte Sequence's base64: the first
    /// 9 bytes of SHA-256 over it. It names the partition (the API key's limits, or an address's)
    /// without revealing the key id or the address.
    static func partitionKey(_ key: String) -> String {
        Data(SHA256.hash(data: Data("sluice-partition:\(key)".utf8)).prefix(9)).base64EncodedString()
    }

    /// `;pk=:<partitionKey(key)>:`, remembered for the keys seen last (every answer carries it,
    /// and computing its digest every time cost 3 % of a predict's CPU in `perf`).
    static func partitionKeyParameter(_ key: String) -> String {
        if let known = partitionKeys.withLock({ $0.get(key) }) { return known }
        let parameter = ";pk=:" + partitionKey(key) + ":"
        partitionKeys.withLock { $0.set(key, parameter) }
        return parameter
    }

    private static let partitionKeys = Mutex(LRUCache<String, String>(capacity: 4096))

    /// Rounded up, and never below `minimum` (`Retry-After: 0` would invite an immediate retry).
    static func wholeSeconds(_ duration: Duration, minimum: Int = 1) -> Int {
        max(minimum, Int(duration.seconds.rounded(.up)))
    }
}
