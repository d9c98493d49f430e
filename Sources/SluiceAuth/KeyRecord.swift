import Foundation
import SluiceCore
import SluiceLimiter

/// What a key's owner may do, and how much: the record stored for each API key.
///
/// Encoded with snake_case fields, as the HTTP API shows it; ``secrets`` never leaves the server.
public struct KeyRecord: Sendable, Codable, Equatable {
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
    /// Its limits and what happens beyond them: the limiter's business, carried here as one value.
    public var plan: KeyPlan
    /// `output`: how much of each prediction the key receives (default: full probabilities).
    public var output: PredictionOutput?
    public var expiresAt: Date?
    public var createdAt: Date
    public var secrets: [StoredSecret]
    /// `tenant`: the id of the tenant whose budgets the key shares, if any.
    public var tenant: String?

    public init(
        id: String, name: String, scopes: [Scope], plan: KeyPlan = KeyPlan(), expiresAt: Date? = nil, createdAt: Date = Date(),
        secrets: [StoredSecret]
    ) {
        self.id = id
        self.name = name
        self.scopes = Array(Set(scopes)).sorted()
        self.plan = plan
        self.expiresAt = expiresAt
        self.createdAt = createdAt
        self.secrets = secrets
    }

    /// How much of each prediction the key receives: ``output`` or full probabilities.
    public var effectiveOutput: PredictionOutput { output ?? .probabilities }

    /// True when the key is served by the replica's own limiter while Redis is unreachable:
    /// `on_redis_failure` is `local` and its only scope is `predict` (train, admin and the rest
    /// are always fail-secure).
    public var servedWhenRedisFails: Bool {
        plan.onRedisFailure == .local && scopes == [.predict]
    }

    public func isExpired(at now: Date) -> Bool {
        expiresAt.map { $0 <= now } ?? false
    }

    /// True when `key` is one of this record's live secrets (compared in constant time).
    public func accepts(_ key: APIKey, at now: Date) -> Bool {
        let hash = key.digest
        var accepted = false
        for secret in secrets where secret.validUntil.map({ $0 > now }) ?? true {
            accepted = secret.hash.matches(hash) || accepted  // no early exit
        }
        return accepted && key.id == id
    }

    enum CodingKeys: String, CodingKey {
        case id, name, scopes, secrets, output, tenant
        case expiresAt = "expires_at"
        case createdAt = "created_at"
    }

    /// One flat object: the plan's fields sit beside the record's own, as they always have.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        id = try container.decode(String.self, forKey: .id)
        name = try container.decode(String.self, forKey: .name)
        scopes = try container.decode([Scope].self, forKey: .scopes)
        plan = try KeyPlan(from: decoder)
        output = try container.decodeIfPresent(PredictionOutput.self, forKey: .output)
        expiresAt = try container.decodeIfPresent(Date.self, forKey: .expiresAt)
        createdAt = try container.decode(Date.self, forKey: .createdAt)
        secrets = try container.decode([StoredSecret].self, forKey: .secrets)
        tenant = try container.decodeIfPresent(String.self, forKey: .tenant)
    }

    public func encode(to encoder: any Encoder) throws {
        try plan.encode(to: encoder)
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(name, forKey: .name)
        try container.encode(scopes, forKey: .scopes)
        try container.encodeIfPresent(output, forKey: .output)
        try container.encodeIfPresent(expiresAt, forKey: .expiresAt)
        try container.encode(createdAt, forKey: .createdAt)
        try container.encode(secrets, forKey: .secrets)
        try container.encodeIfPresent(tenant, forKey: .tenant)
    }
}
