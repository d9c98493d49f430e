import Foundation
import SluiceCore
import SluiceLimiter

/// What a key's owner may do, and how much: the record stored for each API key.
///
/// Encoded with snake_case fields, as the HTTP API shows it; ``secrets`` never leaves the server.
public struct KeyRecord: Sendable, Codable, Equatable {
    /// What happens to a request over the key's limit.
    public enum Overflow: String, Sendable, Codable {
        /// `429 Too Many Requests` with `Retry-After`.
        case reject
        /// The replica holds the request until its slot (at most ``KeyRecord/maxDelay``), then serves it.
        case delay
        /// The request is queued for a worker (slot at most ``KeyRecord/maxQueueDelay`` away, at most
        /// ``KeyRecord/maxDepth`` jobs pending) and answered with `202 Accepted`.
        case queue
    }

    /// What the key's requests get while Redis is unreachable (`on_redis_failure`).
    public enum RedisFailureMode: String, Sendable, Codable {
        /// `503 Service Unavailable`, as for every key by default (fail-secure).
        case closed
        /// Served by the replica's own limiter at its share of the key's limits (degraded
        /// mode); only for keys whose only scope is `predict`.
        case local
    }

    /// One accepted secret, as its hash; a rotated-out secret keeps working until `validUntil`.
    public struct StoredSecret: Sendable, Codable, Equatable {
        public var hash: KeyHash
        public var validUntil: Date?

        public init(hash: KeyHash, validUntil: Date? = nil) {
            self.hash = hash
            self.validUntil = validUntil
        }

        enum CodingKeys: String, CodingKey {
            case hash = "sha256"
            case validUntil = "valid_until"
        }
    }

    public var id: String
    public var name: String
    public var scopes: [Scope]
    public var policies: [Policy]
    public var quotaPerDay: Int?
    public var overflow: Overflow
    /// `max_delay`: the longest a `delay` key's request is held, in seconds (default 1).
    public var maxDelay: Double?
    /// `max_queue_delay`: the furthest slot a job may be queued for, in seconds (default 60).
    public var maxQueueDelay: Double?
    /// `max_depth`: the most jobs pending for this key at once (default 1000).
    public var maxDepth: Int?
    /// `output`: how much of each prediction the key receives (default: full probabilities).
    public var output: PredictionOutput?
    /// `retry_after_jitter`: seconds (0-60, default 0) of uniform random extra added to this key's
    /// `Retry-After`, so that clients refused together do not all come back at once.
    public var retryAfterJitter: Double?
    /// `max_in_flight`: the most requests of this key served at once across all replicas
    /// (default: no limit).
    public var maxInFlight: Int?
    /// `on_redis_failure` (default `closed`).
    public var onRedisFailure: RedisFailureMode?
    public var expiresAt: Date?
    public var createdAt: Date
    public var secrets: [StoredSecret]

    public init(
        id: String, name: String, scopes: [Scope], policies: [Policy] = [KeyRecord.defaultPolicy],
        quotaPerDay: Int? = nil, overflow: Overflow = .reject, expiresAt: Date? = nil, createdAt: Date = Date(),
        secrets: [StoredSecret]
    ) {
        self.id = id
        self.name = name
        self.scopes = Array(Set(scopes)).sorted()
        self.policies = policies
        self.quotaPerDay = quotaPerDay
        self.overflow = overflow
        self.expiresAt = expiresAt
        self.createdAt = createdAt
        self.secrets = secrets
    }

    public static let defaultMaxDelay = 1.0
    public static let defaultMaxQueueDelay = 60.0
    public static let defaultMaxDepth = 1000

    /// The longest a request is held (`delay`) in seconds: ``maxDelay`` or its default.
    public var effectiveMaxDelay: Double { maxDelay ?? Self.defaultMaxDelay }
    /// The furthest a job is queued (`queue`) in seconds: ``maxQueueDelay`` or its default.
    public var effectiveMaxQueueDelay: Double { maxQueueDelay ?? Self.defaultMaxQueueDelay }
    /// The most jobs pending at once: ``maxDepth`` or its default.
    public var effectiveMaxDepth: Int { maxDepth ?? Self.defaultMaxDepth }
    /// How much of each prediction the key receives: ``output`` or full probabilities.
    public var effectiveOutput: PredictionOutput { output ?? .probabilities }

    /// True when the key is served by the replica's own limiter while Redis is unreachable:
    /// `on_redis_failure` is `local` and its only scope is `predict` (train, admin and the rest
    /// are always fail-secure).
    public var servedWhenRedisFails: Bool {
        onRedisFailure == .local && scopes == [.predict]
    }

    /// How far ahead a request over the limit may be reserved instead of refused: zero for
    /// `reject`, `max_delay` for `delay`, `max_queue_delay` for `queue`.
    public var deferralHorizon: Duration {
        switch overflow {
        case .reject: .zero
        case .delay: .milliseconds(Int64(effectiveMaxDelay * 1000))
        case .queue: .milliseconds(Int64(effectiveMaxQueueDelay * 1000))
        }
    }

    /// 10 requests per second with bursts of 20.
    public static let defaultPolicy = Policy(name: "default", rate: 10, period: .seconds(1), burst: 20)

    /// The key's enforced policies plus its daily quota, checked together in one call.
    public var limiterPolicies: [Policy] {
        policies.filter { $0.mode == .enforce } + (quotaPerDay.map { [Policy.daily($0)] } ?? [])
    }

    /// The key's `shadow` policies: tried on the traffic the enforced ones admit, never deciding.
    public var shadowPolicies: [Policy] {
        policies.filter { $0.mode == .shadow }
    }

    public func isExpired(at now: Date) -> Bool {
        expiresAt.map { $0 <= now } ?? false
    }

    /// True when `key` is one of this record's live secrets (compared in constant time).
    public func accepts(_ key: APIKey, at now: Date) -> Bool {
        let hash = key.hash
        var accepted = false
        for secret in secrets where secret.validUntil.map({ $0 > now }) ?? true {
            accepted = secret.hash.matches(hash) || accepted  // no early exit
        }
        return accepted && key.id == id
    }

    enum CodingKeys: String, CodingKey {
        case id, name, scopes, policies, overflow, secrets, output
        case quotaPerDay = "quota_per_day"
        case maxDelay = "max_delay"
        case maxQueueDelay = "max_queue_delay"
        case maxDepth = "max_depth"
        case onRedisFailure = "on_redis_failure"
        case retryAfterJitter = "retry_after_jitter"
        case maxInFlight = "max_in_flight"
        case expiresAt = "expires_at"
        case createdAt = "created_at"
    }
}
