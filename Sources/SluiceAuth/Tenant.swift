import Foundation
import SluiceCore
import SluiceLimiter

/// A customer holding several keys, with budgets those keys share: its own policies (same shape
/// and rules as a key's, `mode: shadow` too) and an optional daily quota. A request of one of
/// its keys is decided against the key's limits and the tenant's in one limiter call.
public struct TenantRecord: Sendable, Codable, Equatable {
    public var id: String
    public var name: String
    /// The tenant's policies and quota, as a key's plan holds them (overflow and the rest are the key's).
    public var plan: KeyPlan
    public var createdAt: Date

    public init(id: String, name: String, policies: [Policy], quotaPerDay: Int? = nil, createdAt: Date = Date()) {
        self.id = id
        self.name = name
        self.plan = KeyPlan(policies: policies, quotaPerDay: quotaPerDay)
        self.createdAt = createdAt
    }

    /// A new random id: `tn` and 16 lowercase hex digits (64 bits).
    public static func generateID() -> String {
        let word = String(UInt64.random(in: .min ... .max), radix: 16)
        return "tn" + String(repeating: "0", count: 16 - word.count) + word
    }

    /// True for an id ``generateID()`` could make.
    public static func isValidID(_ id: String) -> Bool {
        id.utf8.count == 18 && id.hasPrefix("tn") && id.utf8.dropFirst(2).allSatisfy { (48...57).contains($0) || (97...102).contains($0) }
    }

    /// The limiter key the tenant's keys are decided under: their state and the tenant's share one
    /// hash tag, so that one script call (one Redis Cluster slot) decides them all.
    public var limiterKey: String { Self.limiterKey(id) }

    public static func limiterKey(_ id: String) -> String { "t:" + id }

    enum CodingKeys: String, CodingKey {
        case id, name, policies
        case quotaPerDay = "quota_per_day"
        case createdAt = "created_at"
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        id = try container.decode(String.self, forKey: .id)
        name = try container.decode(String.self, forKey: .name)
        plan = KeyPlan(
            policies: try container.decode([Policy].self, forKey: .policies),
            quotaPerDay: try container.decodeIfPresent(Int.self, forKey: .quotaPerDay))
        createdAt = try container.decode(Date.self, forKey: .createdAt)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(name, forKey: .name)
        try container.encode(plan.policies, forKey: .policies)
        try container.encodeIfPresent(plan.quotaPerDay, forKey: .quotaPerDay)
        try container.encode(createdAt, forKey: .createdAt)
    }
}

/// What one request of a key is decided against: the limiter key and the policies, the key's own
/// first. A key without a tenant is decided under its id with its own policies, exactly as ever;
/// a tenant's key under the tenant's limiter key, its policies owned by the key and the tenant's
/// by the tenant (``Policy/owner``).
public struct LimiterCall: Sendable {
    public var key: String
    public var policies: [Policy]
    /// Where the decision is counted for usage metering (``RateLimiter/check(key:policies:cost:horizon:usage:)``):
    /// the key's hash, and its tenant's.
    public var usage: [String]
    /// Deduplicates a retried call (``RateLimiter/check(key:policies:cost:horizon:usage:requestID:)``).
    public var requestID: String?

    public init(key: String, policies: [Policy], usage: [String] = [], requestID: String? = nil) {
        self.key = key
        self.policies = policies
        self.usage = usage
        self.requestID = requestID
    }

    /// `record`'s enforced policies (and quota), with its tenant's when it has one, plus `extra`
    /// (owned by the key); counted for usage.
    public init(_ record: KeyRecord, tenant: TenantRecord?, extra: [Policy] = []) {
        guard let tenant else {
            self.init(
                key: record.id, policies: extra.isEmpty ? record.plan.limiterPolicies : record.plan.limiterPolicies + extra, usage: Self.ownUsage)
            return
        }
        let owner = Policy.Owner.key(record.id)
        var policies = (record.plan.limiterPolicies + extra).map { $0.owned(by: owner) }
        policies += tenant.plan.limiterPolicies.map { $0.owned(by: .tenant) }
        self.init(key: tenant.limiterKey, policies: policies, usage: Self.usageTags(keyID: record.id))
    }

    /// A key without a tenant is counted under its own limiter key.
    static let ownUsage = [""]

    /// A tenant's key is counted under the tenant's limiter key twice: as itself and as the tenant.
    public static func usageTags(keyID: String) -> [String] { ["k:" + keyID, "t"] }
}
