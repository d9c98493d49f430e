import Foundation
import HTTPTypes
import Hummingbird
import Logging
import SluiceAuth
import SluiceCore
import SluiceLimiter

/// May they now: the limiter's decision — from Redis, proven locally from earlier replies, or
/// (degraded mode) the replica's own — plus `max_in_flight` leases and shadow policies.
extension Admission {
    /// Charges the request as `charge` says; a refusal is thrown as its problem.
    /// A `requestID` makes a retry of the same request cost nothing more (see ``LimiterCall/requestID``).
    func charge(_ record: KeyRecord, _ charge: Charge, horizon: Duration, requestID: String? = nil, logger: Logger) async throws -> Decision {
        switch charge {
        case .key(let cost):
            // Neither a tenant nor shadow policies (most keys): no call into either, not even one
            // that returns at once (each async call costs a frame and an executor check).
            let tenant = record.tenant == nil ? nil : try await tenant(of: record, logger: logger)
            var call = LimiterCall(record, tenant: tenant)
            call.requestID = requestID
            let decision = try await chargeKey(record, call, cost: cost, horizon: horizon, logger: logger)
            if record.plan.hasShadowPolicies || tenant?.plan.hasShadowPolicies == true {
                await tryShadowPolicies(record, tenant: tenant, cost: cost, logger: logger)
            }
            return decision
        case .jobStatus:
            return try await chargeKey(record, LimiterCall(key: record.id, policies: [Self.jobStatusPolicy]), cost: 1, horizon: .zero, logger: logger)
        case .training:
            let call = LimiterCall(record, tenant: try await tenant(of: record, logger: logger), extra: [limits.trainingPolicy])
            return try await chargeKey(record, call, cost: 1, horizon: .zero, logger: logger)
        }
    }

    /// The tenant whose budgets `record` shares, `nil` for a key without one. Cached (a request
    /// costs no Redis call for it); while Redis fails, what this replica last knew of it.
    func tenant(of record: KeyRecord, logger: Logger) async throws -> TenantRecord? {
        guard let id = record.tenant else { return nil }
        if limits.breaker.isOpen, record.servedWhenRedisFails { return limits.tenants.lastKnown(id) }
        let tenant: TenantRecord?
        do {
            tenant = try await limits.tenants.get(id)
        } catch {
            if let redis = error.redisCause { limits.breaker.record(redis) }
            if record.servedWhenRedisFails { return nil }
            throw Problem.storeFailure("tenant store", cause: error, metrics: metrics, logger: logger)
        }
        // Deleting a tenant revokes its keys or is refused: a key left without one (a race) is
        // refused as revoked, never served without the budget it was given.
        guard let tenant else { throw Problem.unauthorized("This key's tenant no longer exists.", invalidToken: true) }
        return tenant
    }

    /// Charges `cost` to every policy of `call`, reserving a later slot when one comes within
    /// `horizon`; a denial is a `429` with `Retry-After`.
    func chargeKey(_ record: KeyRecord, _ call: LimiterCall, cost: Int, horizon: Duration, logger: Logger) async throws -> Decision {
        let decision: Decision
        if limits.breaker.isOpen, record.servedWhenRedisFails {
            decision = try decideDegraded(record, call, cost: cost, horizon: horizon)
        } else {
            do {
                decision = try await askLimiter(call, cost: cost, horizon: horizon, logger: logger)
            } catch let problem as Problem where problem.status == .serviceUnavailable && record.servedWhenRedisFails {
                decision = try decideDegraded(record, call, cost: cost, horizon: horizon)
            }
        }
        limits.usage.record(decision, key: call.key, usage: call.usage, cost: cost)
        if let tenant = record.tenant { metrics.recordTenantDecision(tenant: tenant, allowed: decision.isAllowed) }
        guard decision.isAllowed else {
            if decision.retryAfter == nil {
                var problem = Problem.invalid(
                    [.init(pointer: "", detail: "this request costs \(cost), more than the '\(decision.policy.displayName)' burst of \(decision.limit)")],
                    detail: "The request can never be admitted under this key's limits; send a smaller batch.")
                problem.headers = Self.headers(for: decision)
                throw problem
            }
            throw Self.rateLimited(decision, detail: Self.rateLimitDetail(decision), jitter: record.plan.effectiveRetryAfterJitter)
        }
        return decision
    }

    /// The problem type for a request over its key's `max_in_flight`.
    static let concurrencyExceeded = "https://iana.org/assignments/http-problem-types#concurrency"

    /// Takes a lease among the key's requests in flight (`max_in_flight`), or refuses with a `429`
    /// whose `RateLimit` fields use the draft's `concurrency` quota unit. `nil` when the key has
    /// no such limit, or Redis is unreachable for a key served in degraded mode (no leases then).
    func takeLease(_ record: KeyRecord, logger: Logger) async throws -> ConcurrencyLimiter.Lease? {
        guard let limit = record.plan.maxInFlight, !(limits.breaker.isOpen && record.servedWhenRedisFails) else { return nil }
        let timeout = limits.inFlightLease + (record.plan.overflow == .delay ? .milliseconds(Int64(record.plan.effectiveMaxDelay * 1000)) : .zero)
        let outcome: ConcurrencyLimiter.Outcome
        do {
            outcome = try await limits.concurrency.acquire(key: record.id, limit: limit, timeout: timeout)
        } catch {
            if case .redis(let cause) = error { limits.breaker.record(cause) }
            if record.servedWhenRedisFails { return nil }
            throw Problem.storeFailure("concurrency limiter", cause: error, metrics: metrics, logger: logger)
        }
        switch outcome {
        case .acquired(let lease, _):
            return lease
        case .refused(let held, _):
            countDenial(.concurrency, of: record)
            var problem = Problem(
                status: .tooManyRequests, type: Self.concurrencyExceeded, title: "Too many requests in flight",
                detail: "This key already has \(held) requests in flight (max_in_flight \(limit)); retry when one has finished.",
                policy: "concurrency", retryAfter: 1)
            problem.violatedPolicies = ["concurrency"]
            let pk = Self.partitionKeyParameter(record.id)
            problem.headers[.rateLimitPolicy] = "\"concurrency\";q=\(limit);qu=\"concurrency\"\(pk)"
            problem.headers[.rateLimit] = "\"concurrency\";r=0\(pk)"
            throw problem
        }
    }

    /// Gives a lease back once the answer is ready, whatever happens to the request's task.
    func returnLease(_ lease: ConcurrencyLimiter.Lease?) {
        guard let lease else { return }
        let concurrency = limits.concurrency
        Task.detached { await concurrency.release(lease) }
    }

    /// Tries the `shadow` policies of the key (and of its tenant) on a request its enforced
    /// policies admitted: each is its own GCRA (charged when it would admit), and a refusal is only
    /// counted and logged. Never changes the answer; a failure to ask Redis is ignored.
    func tryShadowPolicies(_ record: KeyRecord, tenant: TenantRecord?, cost: Int, logger: Logger) async {
        guard !limits.breaker.isOpen else { return }
        var calls: [LimiterCall] = []
        if !record.plan.shadowPolicies.isEmpty {
            let owner = tenant.map { _ in Policy.Owner.key(record.id) }
            calls.append(LimiterCall(key: tenant?.limiterKey ?? record.id, policies: record.plan.shadowPolicies.map { owner.map($0.owned) ?? $0 }))
        }
        if let tenant, !tenant.plan.shadowPolicies.isEmpty {
            calls.append(LimiterCall(key: tenant.limiterKey, policies: tenant.plan.shadowPolicies.map { $0.owned(by: .tenant) }))
        }
        for call in calls {
            do {
                let decision = try await limits.limiter.check(key: call.key, policies: call.policies, cost: cost)
                guard !decision.isAllowed else { continue }
                for state in decision.states where state.retryAfter != nil || cost > state.policy.burst {
                    metrics.recordShadowDenial(policy: state.policy.displayName)
                    logger.info("shadow policy would refuse", metadata: ["key_id": "\(record.id)", "policy": "\(state.policy.displayName)"])
                }
            } catch {
                logger.debug("shadow policies not tried", metadata: ["error": "\(error)"])
            }
        }
    }

    /// The denial a request of `record` gets whatever its cost (≥ 1), counted in the metrics and
    /// the key's usage, when earlier replies prove Redis would refuse even a cost of 1 beyond the
    /// key's horizon: a larger cost only waits longer. Lets a flood be refused before its body is
    /// read or parsed. `nil` when unproven.
    func provenDenial(_ record: KeyRecord) -> Decision? {
        guard !(limits.breaker.isOpen && record.servedWhenRedisFails) else { return nil }
        let tenant = record.tenant.flatMap { limits.tenants.lastKnown($0) }
        // A tenant not known here yet: only Redis can decide.
        if record.tenant != nil, tenant == nil { return nil }
        let call = LimiterCall(record, tenant: tenant)
        guard let decision = limits.limiter.provenDenial(key: call.key, policies: call.policies, cost: 1, horizon: record.plan.deferralHorizon),
            decision.retryAfter != nil
        else { return nil }
        metrics.recordDecision(decision, duration: .zero)
        limits.usage.record(decision, key: call.key, usage: call.usage, cost: 1)
        return decision
    }

    /// Counts a refusal the limiter did not decide (`max_in_flight`, authentication) for `record`'s
    /// usage, and its tenant's.
    func countDenial(_ count: UsageMeter.Count, of record: KeyRecord) {
        if let tenant = record.tenant {
            limits.usage.recordDenial(count, key: TenantRecord.limiterKey(tenant), usage: LimiterCall.usageTags(keyID: record.id))
        } else {
            limits.usage.recordDenial(count, key: record.id, usage: [""])
        }
    }

    /// Degraded mode: the replica's own limiter at its share of the key's limits. `queue` keys
    /// cannot queue (the queue lives in Redis): what would be queued is a `503`.
    private func decideDegraded(_ record: KeyRecord, _ call: LimiterCall, cost: Int, horizon: Duration) throws -> Decision {
        guard record.servedWhenRedisFails else {
            throw Problem.unavailable("Redis is unreachable; only keys with \"on_redis_failure\": \"local\" are served.")
        }
        let queues = record.plan.overflow == .queue
        let decision = limits.degraded.check(
            key: call.key, policies: call.policies, cost: cost, horizon: queues ? .zero : horizon, replicas: limits.heartbeat.liveReplicas)
        metrics.recordDecision(decision, duration: .zero)
        if queues, !decision.isAllowed, decision.retryAfter != nil {
            var problem = Problem.unavailable("Redis is unreachable: requests over this key's limit cannot be queued now.")
            problem.headers = Self.headers(for: decision)
            throw problem
        }
        return decision
    }

    func askLimiter(_ call: LimiterCall, cost: Int, horizon: Duration = .zero, logger: Logger) async throws -> Decision {
        let started = ContinuousClock.now
        do {
            let decision = try await limits.limiter.check(
                key: call.key, policies: call.policies, cost: cost, horizon: horizon, usage: call.usage, requestID: call.requestID)
            if decision.origin == .redis { limits.breaker.recordSuccess() }
            metrics.recordDecision(decision, duration: ContinuousClock.now - started)
            return decision
        } catch {
            if case .redis(let cause) = error { limits.breaker.record(cause) }
            // Fail-secure: nothing is served without a limiter decision.
            throw Problem.storeFailure("rate limiter", cause: error, metrics: metrics, logger: logger)
        }
    }
}
