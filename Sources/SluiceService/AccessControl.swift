import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import SluiceAuth
import SluiceCore
import SluiceLimiter

/// Who is calling, may they, and may they now: authentication, scopes and the rate-limit decision.
struct AccessControl: Sendable {
    let authenticator: KeyAuthenticator
    let limiter: RateLimiter
    /// Peers whose `X-Forwarded-For` is believed (the load balancers); nobody else's is.
    let trustedProxies: TrustedProxies
    let metrics: ServiceMetrics

    /// Failed authentication is limited per client address, so that guessing keys is throttled
    /// (``ServiceConfiguration/failedAuthPolicy``).
    let failedAuthPolicy: Policy
    /// Open while Redis keeps failing: then keys served when Redis fails (`on_redis_failure:
    /// local`) wait for no Redis call and are decided by ``degraded``; other keys ask Redis as
    /// always (and get `503` when it fails).
    let breaker: CircuitBreaker
    let degraded: DegradedLimiter
    let heartbeat: ReplicaHeartbeat
    /// `max_in_flight`: leases of requests in flight, per key, across replicas.
    let concurrency: ConcurrencyLimiter
    let inFlightLease: Duration

    /// The key's record; failures are `401` (or `429` for a client that keeps failing, `503`
    /// when keys cannot be checked).
    func authenticate(_ request: Request, context: SluiceRequestContext) async throws -> KeyRecord {
        let presented = Self.presentedKey(request.headers)
        // Degraded mode: a key served while Redis fails, known to this replica, waits for no
        // Redis call. Every other key still asks Redis: with Redis Cluster the breaker may have
        // opened for one failed node while the others serve their keys as usual.
        if breaker.isOpen, let record = authenticator.lastKnownRecord(presented) { return record }
        // An address the failed-authentication limiter is provably refusing gets no lookup of
        // an id that does not exist: its made-up keys cost no Redis call (neither a lookup nor
        // the limiter), while real keys from the same address (behind one NAT) still work.
        // Asked only when a lookup is due: a cached key costs neither the address nor the check.
        var clientKey: String { "client-\(clientAddress(request, context: context))" }
        var throttled: Decision?
        do {
            return try await authenticator.authenticate(presented) {
                throttled = limiter.provenDenial(key: clientKey, policies: [failedAuthPolicy])
                return throttled != nil
            }
        } catch {
            if case .unavailable(let cause) = error {
                if cause.redisCause?.isUnavailable == true { breaker.recordFailure() }
                if let record = authenticator.lastKnownRecord(presented) { return record }
                throw Problem.storeFailure("key store", cause: cause, metrics: metrics, logger: context.logger)
            }
            metrics.authFailures.increment()
            let decision: Decision
            let client = clientKey
            if let throttled = throttled ?? limiter.provenDenial(key: client, policies: [failedAuthPolicy]) {
                metrics.recordDecision(throttled, duration: .zero)
                decision = throttled
            } else {
                decision = try await decide(key: client, policies: [failedAuthPolicy], cost: 1, logger: context.logger)
            }
            if !decision.isAllowed {
                throw rateLimited(decision, detail: "Too many failed authentication attempts from this address.")
            }
            var problem = Problem.unauthorized(error.description, invalidToken: presented != nil)
            // Not Sluice-Slot: Redis' clock to the µs is nothing to hand an unauthenticated client.
            problem.headers.append(contentsOf: Self.headers(for: decision, slot: false))
            throw problem
        }
    }

    /// Polling a job's status: 20 per second with bursts of 40, per key, apart from its own limits.
    static let jobStatusPolicy = Policy(name: "job-status", rate: 20, period: .seconds(1), burst: 40)

    /// Policy names a key may not give its own policies: they name Sluice's own limiter state
    /// under the key's id (the daily quota, polling jobs, uploads to train) or per address.
    static let reservedPolicyNames: Set<String> = [
        "daily", ServiceConfiguration.failedAuthPolicy(perMinute: 1, burst: 1).name, jobStatusPolicy.name,
        ServiceConfiguration.trainingPolicy(perHour: 1, burst: 1).name,
    ]

    /// Charges `cost` to every one of `policies` under the key's id, reserving a later slot when
    /// one comes within `horizon`; a denial is a `429` with `Retry-After`.
    func admit(_ record: KeyRecord, policies: [Policy], cost: Int, horizon: Duration, logger: Logger) async throws -> Decision {
        let decision: Decision
        if breaker.isOpen, record.servedWhenRedisFails {
            decision = try decideLocally(record, policies: policies, cost: cost, horizon: horizon)
        } else {
            do {
                decision = try await decide(key: record.id, policies: policies, cost: cost, horizon: horizon, logger: logger)
            } catch let problem as Problem where problem.status == .serviceUnavailable && record.servedWhenRedisFails {
                decision = try decideLocally(record, policies: policies, cost: cost, horizon: horizon)
            }
        }
        guard decision.isAllowed else {
            if decision.retryAfter == nil {
                var problem = Problem.invalid(
                    [.init(pointer: "", detail: "this request costs \(cost), more than the '\(decision.policy.name)' burst of \(decision.limit)")],
                    detail: "The request can never be admitted under this key's limits; send a smaller batch.")
                problem.headers = Self.headers(for: decision)
                throw problem
            }
            throw rateLimited(decision, detail: Self.rateLimitDetail(decision), jitter: record.retryAfterJitter ?? 0)
        }
        return decision
    }

    /// The problem type for a request over its key's `max_in_flight`.
    static let concurrencyExceeded = "https://iana.org/assignments/http-problem-types#concurrency"

    /// Takes a lease among the key's requests in flight (`max_in_flight`), or refuses with a `429`
    /// whose `RateLimit` fields use the draft's `concurrency` quota unit. `nil` when the key has
    /// no such limit, or Redis is unreachable for a key served in degraded mode (no leases then).
    func takeLease(_ record: KeyRecord, logger: Logger) async throws -> ConcurrencyLimiter.Lease? {
        guard let limit = record.maxInFlight, !(breaker.isOpen && record.servedWhenRedisFails) else { return nil }
        let timeout = inFlightLease + (record.overflow == .delay ? .milliseconds(Int64(record.effectiveMaxDelay * 1000)) : .zero)
        let outcome: ConcurrencyLimiter.Outcome
        do {
            outcome = try await concurrency.acquire(key: record.id, limit: limit, timeout: timeout)
        } catch {
            if case .redis(let cause) = error, cause.isUnavailable { breaker.recordFailure() }
            if record.servedWhenRedisFails { return nil }
            throw Problem.storeFailure("concurrency limiter", cause: error, metrics: metrics, logger: logger)
        }
        switch outcome {
        case .acquired(let lease, _):
            return lease
        case .refused(let held, _):
            var problem = Problem(
                status: .tooManyRequests, type: Self.concurrencyExceeded, title: "Too many requests in flight",
                detail: "This key already has \(held) requests in flight (max_in_flight \(limit)); retry when one has finished.",
                policy: "concurrency", retryAfter: 1)
            problem.violatedPolicies = ["concurrency"]
            let pk = ";pk=:\(Self.partitionKey(record.id)):"
            problem.headers[.rateLimitPolicy] = "\"concurrency\";q=\(limit);qu=\"concurrency\"\(pk)"
            problem.headers[.rateLimit] = "\"concurrency\";r=0\(pk)"
            throw problem
        }
    }

    /// Gives a lease back once the answer is ready, whatever happens to the request's task.
    func returnLease(_ lease: ConcurrencyLimiter.Lease?) {
        guard let lease else { return }
        let concurrency = concurrency
        Task.detached { await concurrency.release(lease) }
    }

    /// Tries the key's `shadow` policies on a request its enforced policies admitted: each is its
    /// own GCRA (charged when it would admit), and a refusal is only counted and logged. Never
    /// changes the answer; a failure to ask Redis is ignored.
    func tryShadowPolicies(_ record: KeyRecord, cost: Int, logger: Logger) async {
        let shadow = record.shadowPolicies
        guard !shadow.isEmpty, !breaker.isOpen else { return }
        do {
            let decision = try await limiter.check(key: record.id, policies: shadow, cost: cost)
            guard !decision.isAllowed else { return }
            for state in decision.states where state.retryAfter != nil || cost > state.policy.burst {
                metrics.recordShadowDenial(policy: state.policy.name)
                logger.info("shadow policy would refuse", metadata: ["key_id": "\(record.id)", "policy": "\(state.policy.name)"])
            }
        } catch {
            logger.debug("shadow policies not tried", metadata: ["error": "\(error)"])
        }
    }

    /// The `429` a request of `record` gets whatever its cost (≥ 1), when earlier replies prove
    /// Redis would refuse even a cost of 1 beyond the key's horizon: a larger cost only waits
    /// longer. Lets a flood be refused before its body is read or parsed. `nil` when unproven.
    func provenRefusal(_ record: KeyRecord) -> Problem? {
        guard !(breaker.isOpen && record.servedWhenRedisFails),
            let decision = limiter.provenDenial(key: record.id, policies: record.limiterPolicies, cost: 1, horizon: record.deferralHorizon),
            decision.retryAfter != nil
        else { return nil }
        metrics.recordDecision(decision, duration: .zero)
        return rateLimited(decision, detail: Self.rateLimitDetail(decision), jitter: record.retryAfterJitter ?? 0)
    }

    private static func rateLimitDetail(_ decision: Decision) -> String {
        "Rate limit '\(decision.policy.name)' exceeded; retry after the given time."
    }

    /// Degraded mode: the replica's own limiter at its share of the key's limits. `queue` keys
    /// cannot queue (the queue lives in Redis): what would be queued is a `503`.
    private func decideLocally(_ record: KeyRecord, policies: [Policy], cost: Int, horizon: Duration) throws -> Decision {
        guard record.servedWhenRedisFails else {
            throw Problem.unavailable("Redis is unreachable; only keys with \"on_redis_failure\": \"local\" are served.")
        }
        let queues = record.overflow == .queue
        let decision = degraded.check(
            key: record.id, policies: policies, cost: cost, horizon: queues ? .zero : horizon, replicas: heartbeat.liveReplicas)
        metrics.recordDecision(decision, duration: .zero)
        if queues, !decision.isAllowed, decision.retryAfter != nil {
            var problem = Problem.unavailable("Redis is unreachable: requests over this key's limit cannot be queued now.")
            problem.headers = Self.headers(for: decision)
            throw problem
        }
        return decision
    }

    private func decide(key: String, policies: [Policy], cost: Int, horizon: Duration = .zero, logger: Logger) async throws -> Decision {
        let started = ContinuousClock.now
        do {
            let decision = try await limiter.check(key: key, policies: policies, cost: cost, horizon: horizon)
            if decision.origin == .redis { breaker.recordSuccess() }
            metrics.recordDecision(decision, duration: ContinuousClock.now - started)
            return decision
        } catch {
            if case .redis(let cause) = error, cause.isUnavailable { breaker.recordFailure() }
            // Fail-secure: nothing is served without a limiter decision.
            throw Problem.storeFailure("rate limiter", cause: error, metrics: metrics, logger: logger)
        }
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

    /// `Authorization: Bearer <key>`, else `X-API-Key: <key>`.
    /// Byte-level on purpose: this runs on every request.
    static func presentedKey(_ headers: HTTPFields) -> String? {
        if let authorization = headers[.authorization] {
            let bytes = authorization.utf8
            guard bytes.count > 7, bytes.prefix(7).map({ $0 | 0x20 }) == Array("bearer ".utf8) else {
                return ""  // some other scheme: present but unusable
            }
            return trimmedSpaces(authorization.utf8.dropFirst(7))
        }
        return headers[.apiKey].map { trimmedSpaces($0.utf8[...]) }
    }

    private static func trimmedSpaces(_ text: Substring.UTF8View) -> String {
        func isSpace(_ byte: UInt8) -> Bool { byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") }
        var start = text.startIndex
        var end = text.endIndex
        while start < end, isSpace(text[start]) { start = text.index(after: start) }
        while end > start, isSpace(text[text.index(before: end)]) { end = text.index(before: end) }
        return String(Substring(text[start..<end]))
    }

    /// The peer address, or — only when the peer is a trusted proxy — the last address in
    /// `X-Forwarded-For` that is not itself a trusted proxy.
    func clientAddress(_ request: Request, context: SluiceRequestContext) -> String {
        Self.clientAddress(peer: context.remoteAddress?.ipAddress ?? "unknown", forwardedFor: request.headers[.forwardedFor], trusting: trustedProxies)
    }

    /// ``clientAddress(_:context:)`` on plain values (fuzzed on its own).
    static func clientAddress(peer: String, forwardedFor: String?, trusting trustedProxies: TrustedProxies) -> String {
        guard trustedProxies.contains(peer), let forwarded = forwardedFor else { return sanitized(peer) }
        let hops = forwarded.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        let client = hops.last { !trustedProxies.contains($0) } ?? peer
        return sanitized(client)
    }

    /// Keeps an address usable as a limiter key whatever a header contained.
    private static func sanitized(_ address: String) -> String {
        let allowed = address.unicodeScalars.filter { $0.properties.isASCIIHexDigit || $0 == "." || $0 == ":" }
        return String(String.UnicodeScalarView(allowed.prefix(45)))
    }
}
