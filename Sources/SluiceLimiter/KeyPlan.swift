/// A key's plan: how much it may do and what happens beyond that — its policies, daily quota,
/// overflow mode with its bounds, `max_in_flight`, `retry_after_jitter` and `on_redis_failure`.
/// One value in the limiter's own terms; the key's record (in `SluiceAuth`) carries it without
/// interpreting it. Coded as the flat snake_case fields of a key record; each field is declared
/// once, with its default, bounds and rule, in ``KeySetting``.
public struct KeyPlan: Sendable, Codable, Equatable {
    /// What happens to a request over the key's limit.
    public enum Overflow: String, Sendable, Codable, CaseIterable {
        /// `429 Too Many Requests` with `Retry-After`.
        case reject
        /// The replica holds the request until its slot (at most ``KeyPlan/maxDelay``), then serves it.
        case delay
        /// The request is queued for a worker (slot at most ``KeyPlan/maxQueueDelay`` away, at most
        /// ``KeyPlan/maxDepth`` jobs pending) and answered with `202 Accepted`.
        case queue
    }

    /// What the key's requests get while Redis is unreachable (`on_redis_failure`).
    public enum RedisFailureMode: String, Sendable, Codable, CaseIterable {
        /// `503 Service Unavailable`, as for every key by default (fail-secure).
        case closed
        /// Served by the replica's own limiter at its share of the key's limits (degraded
        /// mode); only for keys whose only scope is `predict`.
        case local
    }

    public var policies: [Policy]
    public var quotaPerDay: Int?
    public var overflow: Overflow
    /// ``KeySetting/maxDelay``.
    public var maxDelay: Double?
    /// ``KeySetting/maxQueueDelay``.
    public var maxQueueDelay: Double?
    /// ``KeySetting/maxDepth``.
    public var maxDepth: Int?
    /// ``KeySetting/retryAfterJitter``: spreads the retries of clients refused together.
    public var retryAfterJitter: Double?
    /// ``KeySetting/maxInFlight``.
    public var maxInFlight: Int?
    /// ``KeySetting/onRedisFailure``.
    public var onRedisFailure: RedisFailureMode?

    public init(
        policies: [Policy] = [KeyPlan.defaultPolicy], quotaPerDay: Int? = nil, overflow: Overflow = .reject, maxDelay: Double? = nil,
        maxQueueDelay: Double? = nil, maxDepth: Int? = nil, retryAfterJitter: Double? = nil, maxInFlight: Int? = nil,
        onRedisFailure: RedisFailureMode? = nil
    ) {
        self.policies = policies
        self.quotaPerDay = quotaPerDay
        self.overflow = overflow
        self.maxDelay = maxDelay
        self.maxQueueDelay = maxQueueDelay
        self.maxDepth = maxDepth
        self.retryAfterJitter = retryAfterJitter
        self.maxInFlight = maxInFlight
        self.onRedisFailure = onRedisFailure
    }

    /// 10 requests per second with bursts of 20.
    public static let defaultPolicy = Policy(name: "default", rate: 10, period: .seconds(1), burst: 20)
    public static let defaultMaxDelay = KeySetting.maxDelay.defaultNumber
    public static let defaultMaxQueueDelay = KeySetting.maxQueueDelay.defaultNumber
    public static let defaultMaxDepth = Int(KeySetting.maxDepth.defaultNumber)

    /// The longest a request is held (`delay`) in seconds: ``maxDelay`` or its default.
    public var effectiveMaxDelay: Double { maxDelay ?? Self.defaultMaxDelay }
    /// The furthest a job is queued (`queue`) in seconds: ``maxQueueDelay`` or its default.
    public var effectiveMaxQueueDelay: Double { maxQueueDelay ?? Self.defaultMaxQueueDelay }
    /// The most jobs pending at once: ``maxDepth`` or its default.
    public var effectiveMaxDepth: Int { maxDepth ?? Self.defaultMaxDepth }
    /// ``retryAfterJitter`` or its default (none).
    public var effectiveRetryAfterJitter: Double { retryAfterJitter ?? KeySetting.retryAfterJitter.defaultNumber }
    /// ``onRedisFailure`` or its default (`closed`: fail-secure).
    public var effectiveOnRedisFailure: RedisFailureMode { onRedisFailure ?? .closed }

    /// How far ahead a request over the limit may be reserved instead of refused: zero for
    /// `reject`, `max_delay` for `delay`, `max_queue_delay` for `queue`.
    public var deferralHorizon: Duration {
        switch overflow {
        case .reject: .zero
        case .delay: .milliseconds(Int64(effectiveMaxDelay * 1000))
        case .queue: .milliseconds(Int64(effectiveMaxQueueDelay * 1000))
        }
    }

    /// The enforced policies plus the daily quota, checked together in one call.
    public var limiterPolicies: [Policy] {
        let shadows = hasShadowPolicies
        // Asked on every request: the key's own array when it is the answer (no copy).
        if !shadows, quotaPerDay == nil { return policies }
        var enforced = shadows ? policies.filter { $0.mode == .enforce } : policies
        if let quotaPerDay { enforced.append(Policy.daily(quotaPerDay)) }
        return enforced
    }

    /// True when some policy is a `shadow` one (asked on every request: no array built).
    public var hasShadowPolicies: Bool { policies.contains { $0.mode == .shadow } }

    /// The `shadow` policies: tried on the traffic the enforced ones admit, never deciding.
    public var shadowPolicies: [Policy] {
        policies.filter { $0.mode == .shadow }
    }

    enum CodingKeys: String, CodingKey {
        case policies, overflow
        case quotaPerDay = "quota_per_day"
        case maxDelay = "max_delay"
        case maxQueueDelay = "max_queue_delay"
        case maxDepth = "max_depth"
        case retryAfterJitter = "retry_after_jitter"
        case maxInFlight = "max_in_flight"
        case onRedisFailure = "on_redis_failure"
    }
}
