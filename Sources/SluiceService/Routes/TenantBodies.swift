import Foundation
import SluiceAuth
import SluiceLimiter

/// `POST /v1/tenants` body: a name, and the budgets the tenant's keys share — `policies` (as a
/// key's, `mode: shadow` too) and `quota_per_day`, at least one of them.
struct TenantSpec: Decodable {
    var name: String
    var policies: [Policy]?
    var quota_per_day: Int?

    static let shape = BodyShape.object([
        "name": .value, KeySetting.quotaPerDay.field: .integer,
        "policies": .array(of: .object(["name": .value, "rate": .integer, "period": .value, "burst": .integer, "mode": .value])),
    ])

    static func decode(_ body: [UInt8]) throws(Problem) -> TenantSpec {
        let spec = try StrictBody.decode(TenantSpec.self, from: body, shape: shape)
        try spec.validate()
        return spec
    }

    /// The rules of a key's name, policies and quota, and a budget to share.
    func validate() throws(Problem) {
        var errors = KeySpec.nameErrors(name) + KeySpec.policyErrors(policies, quotaPerDay: quota_per_day)
        if let quota = quota_per_day, !KeySetting.quotaPerDay.accepts(Double(quota)) {
            errors.append(.init(pointer: KeySetting.quotaPerDay.pointer, detail: KeySetting.quotaPerDay.rule))
        }
        if (policies ?? []).isEmpty, quota_per_day == nil {
            errors.append(.init(pointer: "/policies", detail: "a tenant needs policies, a quota_per_day, or both"))
        }
        guard errors.isEmpty else { throw Problem.invalid(errors) }
    }
}

/// `PATCH /v1/tenants/{id}` body: any of `POST`'s fields; those given replace the tenant's. The
/// limiter state of every policy whose name stays is kept.
struct TenantPatchSpec: Decodable {
    var name: String?
    var policies: [Policy]?
    var quota_per_day: Int?

    static func decode(_ body: [UInt8]) throws(Problem) -> TenantPatchSpec {
        try StrictBody.decode(TenantPatchSpec.self, from: body, shape: TenantSpec.shape)
    }

    func applied(to record: TenantRecord) throws(Problem) -> TenantRecord {
        let spec = TenantSpec(
            name: name ?? record.name, policies: policies ?? record.plan.policies, quota_per_day: quota_per_day ?? record.plan.quotaPerDay)
        try spec.validate()
        var changed = record
        changed.name = spec.name
        changed.plan = KeyPlan(policies: spec.policies ?? [], quotaPerDay: spec.quota_per_day)
        return changed
    }
}

/// A tenant as the API shows it; `keys` (the ids of its keys) only when one tenant is shown.
struct TenantView: Encodable {
    var id: String
    var name: String
    var policies: [Policy]
    var quota_per_day: Int?
    var created_at: Date
    var keys: [String]?

    init(_ record: TenantRecord, keys: [String]? = nil) {
        id = record.id
        name = record.name
        policies = record.plan.policies
        quota_per_day = record.plan.quotaPerDay
        created_at = record.createdAt
        self.keys = keys
    }
}
