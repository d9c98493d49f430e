import Foundation
import HTTPTypes
import Hummingbird
import Logging
import SluiceAuth
import SluiceCore
import SluiceLimiter
import SluiceModel
import SluiceQueue
import Tracing

/// The one place that decides what becomes of a request: serve it now, hold it until its slot,
/// queue it for a worker, or refuse it. Authentication, the scope check, the limiter call (in
/// Redis, proven locally, or degraded), `max_in_flight` leases, the key's deferral horizon, the
/// client's `Prefer` and the queue's `max_depth` all live behind ``serve(_:_:scopes:charge:deferral:authenticated:_:)``.
struct Admission: Sendable {
    /// What becomes of an authenticated, permitted request.
    enum Verdict: Sendable {
        /// Serve it now.
        case now
        /// Hold it this long, then serve it (its slot is reserved).
        case hold(Duration)
        /// It was queued as this job, to run at `slot` (µs on Redis' clock).
        case enqueue(JobID, slot: Int64)
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

    /// A valid request that may wait for a later slot rather than be refused (a `delay` or
    /// `queue` key over its limit): the job it would become, and the request's header fields,
    /// whose `Prefer` is read only for a request that is deferred (not on the hot path).
    struct Deferral: Sendable {
        var job: PredictionJob
        var headers: HTTPFields
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
    let limiter: RateLimiter
    /// Peers whose `X-Forwarded-For` is believed (the load balancers); nobody else's is.
    let trustedProxies: TrustedProxies
    let metrics: ServiceMetrics
    /// Failed authentication is limited per client address, so that guessing keys is throttled
    /// (``ServiceConfiguration/failedAuthPolicy``).
    let failedAuthPolicy: Policy
    /// Uploads to train, per replica (``ServiceConfiguration/trainingPolicy``).
    let trainingPolicy: Policy
    /// Open while Redis keeps failing: then keys served when Redis fails (`on_redis_failure:
    /// local`) wait for no Redis call and are decided by ``degraded``; other keys ask Redis as
    /// always (and get `503` when it fails).
    let breaker: CircuitBreaker
    let degraded: DegradedLimiter
    let heartbeat: ReplicaHeartbeat
    /// `max_in_flight`: leases of requests in flight, per key, across replicas.
    let concurrency: ConcurrencyLimiter
    let inFlightLease: Duration
    /// Where `queue` verdicts go (bounded by the key's `max_depth`).
    let jobs: PartitionedJobQueue

    /// Polling a job's status: 20 per second with bursts of 40, per key, apart from its own limits.
    static let jobStatusPolicy = Policy(name: "job-status", rate: 20, period: .seconds(1), burst: 40)

    /// Policy names a key may not give its own policies: they name Sluice's own limiter state
    /// under the key's id (the daily quota, polling jobs, uploads to train) or per address.
    static let reservedPolicyNames: Set<String> = [
        "daily", ServiceConfiguration.failedAuthPolicy(perMinute: 1, burst: 1).name, jobStatusPolicy.name,
        ServiceConfiguration.trainingPolicy(perHour: 1, burst: 1).name,
    ]

    /// Admits the request (authenticating it unless the caller already has, passing
    /// `authenticated`) and runs `body` with the verdict, or throws the refusal. Every response,
    /// success or problem, carries the `RateLimit` headers of the decision; a `max_in_flight`
    /// lease is held until `body` has its answer.
    func serve(
        _ request: Request, _ context: SluiceRequestContext, scopes: Set<Scope>, charge: Charge = .key(cost: 1),
        deferral: Deferral? = nil, authenticated: KeyRecord? = nil, _ body: (Admitted) async throws -> Response
    ) async throws -> Response {
        let record: KeyRecord
        if let authenticated {
            record = authenticated
        } else {
            record = try await authenticate(request, context: context)
        }
        RequestFacts.record(keyID: record.id)
        var lease: ConcurrencyLimiter.Lease?
        defer { returnLease(lease) }
        let permitted = !scopes.isDisjoint(with: record.scopes)
        let decision: Decision
        do {
            decision = try await withSpan("admission") { span in
                do {
                    // A request of a key with max_in_flight holds a lease from before its limiter check
                    // until its answer is ready (held requests included; a queued one's ends with its 202).
                    if case .key = charge, permitted { lease = try await takeLease(record, logger: context.logger) }
                    let decision = try await charged(
                        record, charge, horizon: permitted && deferral != nil ? record.plan.deferralHorizon : .zero, logger: context.logger)
                    if span.isRecording { Self.describe(decision, in: span) }
                    return decision
                } catch let problem as Problem {
                    if span.isRecording { Self.describe(problem, in: span) }
                    throw problem
                }
            }
        } catch {
            RequestFacts.record(decision: "denied")
            throw error
        }
        RequestFacts.record(decision: decision.delay > .zero ? "deferred" : "allowed")
        do {
            guard permitted else { throw Problem.forbidden(missing: scopes.map(\.rawValue).sorted()) }
            let (verdict, applied) = try await verdict(for: decision, record: record, deferral: deferral, logger: context.logger)
            var response = try await body(Admitted(record: record, decision: decision, verdict: verdict, preferenceApplied: applied))
            Self.appendHeaders(for: decision, to: &response.headers)
            return response
        } catch var problem as Problem {
            // A refusal built from this decision carries its headers already.
            if problem.headers[.rateLimit] == nil { Self.appendHeaders(for: decision, to: &problem.headers) }
            throw problem
        }
    }

    /// ``serve(_:_:scopes:charge:deferral:authenticated:_:)`` for handlers that need only the key's record.
    func serve(
        _ request: Request, _ context: SluiceRequestContext, scopes: Set<Scope>, _ body: (KeyRecord) async throws -> Response
    ) async throws -> Response {
        try await serve(request, context, scopes: scopes) { admitted in try await body(admitted.record) }
    }

    /// Charges the request to the limiter; a refusal is thrown as its problem.
    private func charged(_ record: KeyRecord, _ charge: Charge, horizon: Duration, logger: Logger) async throws -> Decision {
        switch charge {
        case .key(let cost):
            let decision = try await admit(record, policies: record.plan.limiterPolicies, cost: cost, horizon: horizon, logger: logger)
            await tryShadowPolicies(record, cost: cost, logger: logger)
            return decision
        case .jobStatus:
            return try await admit(record, policies: [Self.jobStatusPolicy], cost: 1, horizon: .zero, logger: logger)
        case .training:
            return try await admit(record, policies: record.plan.limiterPolicies + [trainingPolicy], cost: 1, horizon: .zero, logger: logger)
        }
    }

    /// Now, or — for a slot reserved ahead — held or queued as the key's overflow mode and the
    /// client's `Prefer` choose (``DeferralPlan``).
    private func verdict(for decision: Decision, record: KeyRecord, deferral: Deferral?, logger: Logger) async throws -> (Verdict, String?) {
        guard decision.delay > .zero, let deferral else { return (.now, nil) }
        switch DeferralPlan.choose(overflow: record.plan.overflow, preferences: DeferralPreferences(deferral.headers), delay: decision.delay) {
        case .hold(let applied):
            return (.hold(decision.delay), applied)
        case .enqueue(let applied):
            return (try await enqueue(deferral.job, record: record, decision: decision, logger: logger), applied)
        }
    }

    /// Queues the job at its reserved slot, unless the key already has `max_depth` jobs pending:
    /// then throws a `429` (by the slot it would have had, at least one of its queued jobs has run).
    private func enqueue(_ job: PredictionJob, record: KeyRecord, decision: Decision, logger: Logger) async throws -> Verdict {
        let id = JobID.generate()
        let maxDepth = record.plan.effectiveMaxDepth
        let depth = try await Problem.storeCall("job queue", metrics: metrics, logger: logger) {
            try await jobs.enqueue(id, keyID: record.id, input: job.joiningCurrentTrace().encoded(), notBefore: decision.slotTime, maxDepth: maxDepth)
        }
        guard depth != nil else {
            var problem = rateLimited(decision, detail: "This key already has \(maxDepth) jobs queued (max_depth); retry after the given time.")
            problem.policy = "max_depth"
            problem.retryAfter = Self.wholeSeconds(decision.delay)
            throw problem
        }
        metrics.deferred(held: false)
        return .enqueue(id, slot: decision.slotTime)
    }
}
