import Crypto
import Foundation
import HTTPTypes
import SluiceCore
import SluiceLimiter

/// How a decision reaches the client: the `429` problem, `Retry-After`, and the `RateLimit`
/// headers of draft-ietf-httpapi-ratelimit-headers-10.
extension Admission {
    static func rateLimitDetail(_ decision: Decision) -> String {
        refusalText(decision.policy.displayName).detail
    }

    /// Per policy name, the texts of its refusals, made once: a flood of 429s then builds no
    /// string and no array of its own for them. Policy names are few (a key has at most a handful,
    /// from one validated vocabulary per deployment); an LRU bounds them all the same.
    private static func refusalText(_ name: String) -> (detail: String, violated: [String]) {
        if let known = refusalTexts.get(name) { return known }
        let text = (detail: "Rate limit '\(name)' exceeded; retry after the given time.", violated: [name])
        refusalTexts.set(name, text)
        return text
    }

    private static let refusalTexts = SharedLRUCache<String, (detail: String, violated: [String])>(capacity: 1024)

    /// A `429` for `decision`: `Retry-After` is the true wait rounded up, plus a uniform extra in
    /// [0, `jitter`] seconds (the key's `retry_after_jitter`) — never earlier than the true wait.
    static func rateLimited(_ decision: Decision, detail: String, jitter: Double = 0) -> Problem {
        let wait = decision.retryAfter ?? .seconds(1)
        let extra: Duration = jitter > 0 ? .milliseconds(Int64(Double.random(in: 0...jitter) * 1000)) : .zero
        var problem = Problem(
            status: .tooManyRequests, type: Self.quotaExceeded, title: "Too many requests", detail: detail,
            policy: decision.policy.displayName, retryAfter: Self.wholeSeconds(wait + extra)
        )
        let violated = decision.states.count { $0.retryAfter != nil }
        if violated == 1, decision.states.first(where: { $0.retryAfter != nil })?.policy == decision.policy {
            // The deciding policy alone (the usual refusal): its cached one-name array.
            problem.violatedPolicies = Self.refusalText(decision.policy.displayName).violated
        } else {
            problem.violatedPolicies = decision.states.compactMap { $0.retryAfter != nil ? $0.policy.displayName : nil }
        }
        Self.appendHeaders(for: decision, to: &problem.headers)
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
        appendHeaders(for: decision, slot: slot, to: &fields)
        return fields
    }

    /// ``headers(for:slot:)`` added to `fields` in place (an answer's own fields: no second
    /// `HTTPFields` to build and copy over).
    static func appendHeaders(for decision: Decision, slot: Bool = true, to fields: inout HTTPFields) {
        fields.reserveCapacity(fields.count + 4)
        let (pk, policyField) = keyTexts(decision)
        // Built by appending (one string): this runs on every answer.
        var state = ""
        state.reserveCapacity(decision.states.count * (40 + pk.utf8.count))
        for (index, entry) in decision.states.enumerated() {
            if index > 0 { state += ", " }
            state += "\""
            state += entry.policy.displayName
            state += "\";r="
            state += String(entry.remaining)
            state += ";t="
            state += String(wholeSeconds(entry.resetAfter, minimum: 0))
            state += partitionKeyParameter(of: entry.policy, limiterKey: pk)
        }
        fields.append(HTTPField(name: .rateLimitPolicy, value: policyField))
        fields.append(HTTPField(name: .rateLimit, value: state))
        if decision.origin == .degraded { fields.append(HTTPField(name: .sluiceDegraded, value: "local")) }
        if slot, decision.isAllowed, decision.decidedAt > 0 {
            // The admitted request's slot on the limiter's clock (Redis' TIME), to the µs: lets a
            // load test check admissions against the policy exactly, whatever the network jitter.
            let slot = decision.slotTime
            fields.append(HTTPField(name: .sluiceSlot, value: String(slot / 1_000_000) + "." + String(slot % 1_000_000).leftPadded(to: 6)))
        }
    }

    /// `RateLimit-Policy` of `states`: `"default";q=20;w=1<pk>, …`.
    private static func policyField(_ states: [Decision.PolicyState], pk: String) -> String {
        var field = ""
        field.reserveCapacity(states.count * (40 + pk.utf8.count))
        for (index, entry) in states.enumerated() {
            if index > 0 { field += ", " }
            field += "\""
            field += entry.policy.displayName
            field += "\";q="
            field += String(entry.policy.burst)
            field += ";w="
            field += String(wholeSeconds(entry.policy.period, minimum: 1))
            field += partitionKeyParameter(of: entry.policy, limiterKey: pk)
        }
        return field
    }

    /// What every answer about one limiter key repeats, made once: its `pk` parameter, and its
    /// `RateLimit-Policy` value for the policies it was last made for.
    private struct KeyTexts {
        var partitionKey: String
        var policies: [Policy] = []
        var policyField = ""
    }

    /// Limiter keys seen last: computing the partition key's digest on every answer cost 3 % of a
    /// predict's CPU in `perf`.
    private static let keyTexts = SharedLRUCache<String, KeyTexts>(capacity: 4096)

    /// The `pk` parameter and `RateLimit-Policy` value of `decision`, from ``keyTexts`` when known.
    private static func keyTexts(_ decision: Decision) -> (pk: String, policyField: String) {
        guard !decision.key.isEmpty else { return ("", policyField(decision.states, pk: "")) }
        let known = keyTexts.get(decision.key)
        if let known, known.policies.elementsEqual(decision.states, by: { $0 == $1.policy }) {
            return (known.partitionKey, known.policyField)
        }
        let pk = known?.partitionKey ?? ";pk=:" + partitionKey(decision.key) + ":"
        let texts = KeyTexts(partitionKey: pk, policies: decision.states.map(\.policy), policyField: policyField(decision.states, pk: pk))
        keyTexts.set(decision.key, texts)
        return (pk, texts.policyField)
    }

    /// The partition key of a limiter key, as a structured-field Byte Sequence's base64: the first
    /// 9 bytes of SHA-256 over it. It names the partition (the API key's limits, or an address's)
    /// without revealing the key id or the address.
    static func partitionKey(_ key: String) -> String {
        Data(SHA256.hash(data: Data("sluice-partition:\(key)".utf8)).prefix(9)).base64EncodedString()
    }

    /// `;pk=:<partitionKey(key)>:`, remembered with the key's other texts (``keyTexts``).
    static func partitionKeyParameter(_ key: String) -> String {
        if let known = keyTexts.get(key) { return known.partitionKey }
        let parameter = ";pk=:" + partitionKey(key) + ":"
        keyTexts.set(key, KeyTexts(partitionKey: parameter))
        return parameter
    }

    /// A policy's `pk`: the limiter key's (`limiterKey`, already a parameter), except for a policy
    /// a tenant's key owns alone, whose partition is the key's own: a tenant's policies name the
    /// tenant's partition, so a client sees which budget is shared.
    private static func partitionKeyParameter(of policy: Policy, limiterKey: String) -> String {
        guard case .key(let id) = policy.owner else { return limiterKey }
        return partitionKeyParameter(id)
    }

    /// Rounded up, and never below `minimum` (`Retry-After: 0` would invite an immediate retry).
    static func wholeSeconds(_ duration: Duration, minimum: Int = 1) -> Int {
        max(minimum, Int(duration.seconds.rounded(.up)))
    }
}
