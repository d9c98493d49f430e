import Foundation
import HTTPTypes
import Hummingbird
import Logging
import SluiceAuth
import SluiceCore
import SluiceLimiter
import Tracing

/// The one place that decides what becomes of a request: serve it now, hold it until its slot,
/// queue it at its slot, or refuse it. A request crosses into it at most twice:
/// ``screen(_:_:refusingProvenOverLimit:)`` (who is calling, and is their key provably over its
/// limit — before any body is read) and ``admit(_:_:scopes:charge:deferrable:screened:_:)``
/// (the scope check, the `max_in_flight` lease, the limiter's charge and the verdict, around the
/// handler). It decides with the caller's identity and ``AdmissionLimits``, nothing else: what
/// a verdict leads to (the queue, the model) belongs to the routes.
///
/// A class: every route and handler holds it, and copying a struct of a dozen references cost a
/// retain and a release of each on every request.
final class Admission: Sendable {
    /// What becomes of an authenticated, permitted request.
    enum Verdict: Sendable, Equatable {
        /// Serve it now.
        case now
        /// Hold it this long, then serve it (its slot is reserved).
        case hold(Duration)
        /// Queue it to run at `slot` (µs on Redis' clock, reserved); the route enqueues it.
        case queue(slot: Int64)
    }

    /// What a request is charged against.
    enum Charge: Sendable {
        /// `cost` units on every enforced policy of the key (and its daily quota).
        case key(cost: Int)
        /// One unit of ``jobStatusPolicy``, apart from the key's own limits, so that polling a
        /// queued job never eats into the rate the job itself is waiting for.
        case jobStatus
        /// One unit on every policy of the key and on the replica's training limit
        /// (``ServiceConfiguration/trainingPolicy``), so that walking a model anywhere takes
        /// many uploads over a long time.
        case training
    }

    /// An admitted request, as its handler sees it.
    struct Admitted: Sendable {
        var record: KeyRecord
        var decision: Decision
        /// A refusal is thrown as its problem instead (401, 403, 429, 503, …).
        var verdict: Verdict
        /// `Preference-Applied`, when the client's `Prefer` decided the verdict.
        var preferenceApplied: String?
    }

    let authenticator: KeyAuthenticator
    /// Peers whose `X-Forwarded-For` is believed (the load balancers); nobody else's is.
    let trustedProxies: TrustedProxies
    let limits: AdmissionLimits
    let metrics: ServiceMetrics
    /// Whether requests are traced (`OTEL_*` set): without it no span is even started, since the
    /// no-op tracer's `withSpan` still looks its tracer up and sets a task-local on every call.
    let traced: Bool
    /// The last proven `429` of each key, reused while its values stay the same.
    let refusals = RefusalMemo()

    init(authenticator: KeyAuthenticator, trustedProxies: TrustedProxies, limits: AdmissionLimits, metrics: ServiceMetrics, traced: Bool) {
        self.authenticator = authenticator
        self.trustedProxies = trustedProxies
        self.limits = limits
        self.metrics = metrics
        self.traced = traced
    }

    /// Polling a job's status: 20 per second with bursts of 40, per key, apart from its own limits.
    static let jobStatusPolicy = Policy(name: "job-status", rate: 20, period: .seconds(1), burst: 40)

    /// Policy names a key may not give its own policies: they name Sluice's own limiter state
    /// under the key's id (the daily quota, polling jobs, uploads to train) or per address.
    static let reservedPolicyNames: Set<String> = [
        "daily", ServiceConfiguration.failedAuthPolicy(perMinute: 1, burst: 1).name, jobStatusPolicy.name,
        ServiceConfiguration.trainingPolicy(perHour: 1, burst: 1).name,
    ]

    /// What ``screen(_:_:refusingProvenOverLimit:)`` found.
    enum Screening {
        case admissible(KeyRecord)
        /// The `429` of a key proven over its limit, for the route to answer with rather than
        /// throw while tracing is off: a flood is made of them, and a thrown problem is boxed,
        /// cast and rethrown by every middleware it crosses. (Traced, it is thrown like every
        /// other refusal, so that its span says so.) Written by ``refusals``.
        case refused(Response)
    }

    /// The first crossing: the caller's key record (``authenticate(_:context:)``), or — when
    /// `refusingProvenOverLimit` — the `429` of a key that earlier replies prove over its limit
    /// whatever the request costs, so that a flood is refused before its body is read.
    func screen(_ request: Request, _ context: SluiceRequestContext, refusingProvenOverLimit: Bool) async throws -> Screening {
        // A key whose record is cached and fresh (the usual request) is found without a suspension.
        let presented = Self.presentedKey(request.headers)
        let cached = authenticator.cachedAnswer(presented)
        let record: KeyRecord
        if case .success(let known)? = cached {
            record = known
        } else {
            record = try await authenticate(request, presented: presented, cached: cached, context: context)
        }
        if refusingProvenOverLimit, let decision = provenDenial(record) {
            RequestFacts.record(keyID: record.id)
            RequestFacts.record(decision: "denied")
            let jitter = record.plan.effectiveRetryAfterJitter
            if traced { throw Self.rateLimited(decision, detail: Self.rateLimitDetail(decision), jitter: jitter) }
            return .refused(refusals.response(refusing: decision, path: request.uri.path, jitter: jitter))
        }
        return .admissible(record)
    }

    /// The second crossing (or the only one): screens the request unless the caller already
    /// has (`screened`), checks its scopes, takes its `max_in_flight` lease, charges it and runs
    /// `body` with the verdict, or throws the refusal. Only a `deferrable` request (a valid
    /// prediction of a `delay` or `queue` key) may be held or queued rather than refused. Every
    /// response, success or problem, carries the `RateLimit` headers of the decision; the lease
    /// is held until `body` has its answer.
    func admit(
        _ request: Request, _ context: SluiceRequestContext, scopes: Set<Scope>, charge: Charge = .key(cost: 1),
        deferrable: Bool = false, screened: KeyRecord? = nil, _ body: (Admitted) async throws -> Response
    ) async throws -> Response {
        let record: KeyRecord
        if let screened {
            record = screened
        } else {
            record = try await authenticate(request, context: context)
        }
        RequestFacts.record(keyID: record.id)
        var lease: ConcurrencyLimiter.Lease?
        defer { returnLease(lease) }
        let permitted = !scopes.isDisjoint(with: record.scopes)
        let decision: Decision
        func decide(_ span: (any Span)?) async throws -> Decision {
            do {
                // A request of a key with max_in_flight holds a lease from before its limiter check
                // until its answer is ready (held requests included; a queued one's ends with its 202).
                if case .key = charge, permitted { lease = try await takeLease(record, logger: context.logger) }
                let decision = try await self.charge(
                    record, charge, horizon: permitted && deferrable ? record.plan.deferralHorizon : .zero,
                    requestID: Self.requestID(request, charge: charge, keyID: record.id), logger: context.logger)
                if let span, span.isRecording { Self.describe(decision, in: span) }
                return decision
            } catch let problem as Problem {
                if let span, span.isRecording { Self.describe(problem, in: span) }
                throw problem
            }
        }
        do {
            decision = try await traced ? withSpan("admission") { span in try await decide(span) } : decide(nil)
        } catch {
            RequestFacts.record(decision: "denied")
            throw error
        }
        RequestFacts.record(decision: decision.delay > .zero ? "deferred" : "allowed")
        do {
            guard permitted else { throw Problem.forbidden(missing: scopes.map(\.rawValue).sorted()) }
            let (verdict, applied) = Self.verdict(for: decision, overflow: record.plan.overflow, deferrable: deferrable, headers: request.headers)
            var response = try await body(Admitted(record: record, decision: decision, verdict: verdict, preferenceApplied: applied))
            Self.appendHeaders(for: decision, to: &response.headers)
            return response
        } catch var problem as Problem {
            // A refusal built from this decision carries its headers already.
            if !problem.headers.contains(.rateLimit) { Self.appendHeaders(for: decision, to: &problem.headers) }
            throw problem
        }
    }

    /// ``admit(_:_:scopes:charge:deferrable:screened:_:)`` for handlers that need only the key's record.
    func admit(
        _ request: Request, _ context: SluiceRequestContext, scopes: Set<Scope>, _ body: (KeyRecord) async throws -> Response
    ) async throws -> Response {
        try await admit(request, context, scopes: scopes) { admitted in try await body(admitted.record) }
    }

    /// The limiter's request id of a request charged to its key that carries an `Idempotency-Key`:
    /// its retry after a lost limiter reply is not charged twice. `nil` otherwise (no cost).
    private static func requestID(_ request: Request, charge: Charge, keyID: String) -> String? {
        guard case .key = charge, let header = request.headers.value(.idempotencyKey), let key = IdempotencyStore.parseKey(header) else { return nil }
        return IdempotencyStore.limiterRequestID(keyID: keyID, idempotencyKey: key)
    }

    /// Now, or — for a slot reserved ahead — held or queued as the key's overflow mode and the
    /// client's `Prefer` choose (``DeferralPlan``). `Prefer` is read only for a request that is
    /// deferred (not on the hot path).
    private static func verdict(for decision: Decision, overflow: KeyPlan.Overflow, deferrable: Bool, headers: HTTPFields) -> (Verdict, String?) {
        guard decision.delay > .zero, deferrable else { return (.now, nil) }
        switch DeferralPlan.choose(overflow: overflow, preferences: DeferralPreferences(headers), delay: decision.delay) {
        case .hold(let applied):
            return (.hold(decision.delay), applied)
        case .enqueue(let applied):
            return (.queue(slot: decision.slotTime), applied)
        }
    }
}
