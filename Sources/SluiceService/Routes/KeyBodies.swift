import Foundation
import Hummingbird
import SluiceAuth
import SluiceCore
import SluiceLimiter

/// `POST /v1/keys` body.
struct KeySpec: Decodable {
    var name: String
    var scopes: [Scope]
    var policies: [Policy]?
    var quota_per_day: Int?
    var overflow: KeyPlan.Overflow?
    var max_delay: Double?
    var max_queue_delay: Double?
    var max_depth: Int?
    var output: PredictionOutput?
    var on_redis_failure: KeyPlan.RedisFailureMode?
    var retry_after_jitter: Double?
    var max_in_flight: Int?
    var expires_at: Date?
    /// The tenant whose budgets the key shares; `""` (in a PATCH) takes the key out of its tenant.
    var tenant: String?

    /// Control characters (NUL, BEL, …) and bidirectional overrides (U+202E turns `txt.exe` into
    /// `exe.txt` on screen) have no place in a key's name: logs and admin screens show it.
    static func isInvisible(_ scalar: Unicode.Scalar) -> Bool {
        scalar.properties.generalCategory == .control || (0x202A...0x202E).contains(scalar.value) || (0x2066...0x2069).contains(scalar.value)
            || scalar.value == 0x200E || scalar.value == 0x200F
    }

    /// The fields `POST /v1/keys` takes (the key's record, then its plan's ``KeySetting``s);
    /// anything else is refused.
    static let shape: BodyShape = {
        var fields: [String: BodyShape] = [
            "name": .value, "scopes": .value, "output": .value, "expires_at": .value, "tenant": .value,
            "policies": .array(of: .object(["name": .value, "rate": .integer, "period": .value, "burst": .integer, "mode": .value])),
        ]
        for setting in KeySetting.all { fields[setting.field] = setting.kind == .integer ? .integer : .value }
        return .object(fields)
    }()

    static func decode(_ body: [UInt8]) throws(Problem) -> KeySpec {
        let spec = try StrictBody.decode(KeySpec.self, from: body, shape: shape)
        try spec.validate()
        return spec
    }

    /// Every rule a key's settings must meet, at creation and after a change.
    func validate() throws(Problem) {
        let spec = self
        var errors = Self.nameErrors(spec.name)
        if spec.scopes.isEmpty { errors.append(.init(pointer: "/scopes", detail: "at least one scope")) }
        errors += Self.policyErrors(spec.policies, quotaPerDay: spec.quota_per_day)
        if let tenant = spec.tenant, !tenant.isEmpty, !TenantRecord.isValidID(tenant) {
            errors.append(.init(pointer: "/tenant", detail: Self.noSuchTenant))
        }
        let overflow = spec.overflow ?? .reject
        check(KeySetting.quotaPerDay, spec.quota_per_day.map(Double.init), overflow, &errors)
        check(KeySetting.maxDelay, spec.max_delay, overflow, &errors)
        check(KeySetting.maxQueueDelay, spec.max_queue_delay, overflow, &errors)
        check(KeySetting.maxDepth, spec.max_depth.map(Double.init), overflow, &errors)
        if spec.on_redis_failure == .local, Set(spec.scopes) != [.predict] {
            errors.append(.init(pointer: KeySetting.onRedisFailure.pointer, detail: KeySetting.onRedisFailure.rule))
        }
        check(KeySetting.maxInFlight, spec.max_in_flight.map(Double.init), overflow, &errors)
        check(KeySetting.retryAfterJitter, spec.retry_after_jitter, overflow, &errors)
        if let expiry = spec.expires_at, expiry <= Date() { errors.append(.init(pointer: "/expires_at", detail: "must be in the future")) }
        guard errors.isEmpty else { throw Problem.invalid(errors) }
    }

    static let noSuchTenant = "no such tenant"

    /// A key's or a tenant's name: counted in code points, as JSON Schema's maxLength counts (openapi.yaml).
    static func nameErrors(_ name: String) -> [Problem.FieldError] {
        guard name.isEmpty || name.unicodeScalars.count > 64 || name.unicodeScalars.contains(where: isInvisible) else { return [] }
        return [.init(pointer: "/name", detail: "1-64 characters, none of them control or bidirectional-override characters")]
    }

    /// The rules a key's or a tenant's policies meet: each valid, names unique and not Sluice's
    /// own, at least one enforced unless a daily quota is given.
    static func policyErrors(_ policies: [Policy]?, quotaPerDay: Int?) -> [Problem.FieldError] {
        var errors: [Problem.FieldError] = []
        for (index, policy) in (policies ?? []).enumerated() {
            if let problem = policy.validationError { errors.append(.init(pointer: "/policies/\(index)", detail: problem)) }
        }
        if let policies,
            policies.isEmpty || Set(policies.map(\.name)).count != policies.count
                || policies.contains(where: { Admission.reservedPolicyNames.contains($0.name) })
        {
            errors.append(.init(
                pointer: "/policies",
                detail: "1 or more policies with unique names other than \(Admission.reservedPolicyNames.sorted().map { "'\($0)'" }.joined(separator: ", ")) (Sluice's own)"))
        }
        if let policies, !policies.isEmpty, policies.allSatisfy({ $0.mode == .shadow }), quotaPerDay == nil {
            errors.append(.init(pointer: "/policies", detail: "at least one policy must be enforced (\"mode\": \"shadow\" only tries a policy)"))
        }
        return errors
    }

    /// A numeric setting given: within its declared bounds, and with an overflow mode it goes with.
    private func check(_ setting: KeySetting, _ value: Double?, _ overflow: KeyPlan.Overflow, _ errors: inout [Problem.FieldError]) {
        guard let value else { return }
        if !setting.goes(with: overflow) { errors.append(.init(pointer: setting.pointer, detail: setting.modeRule)) }
        if !setting.accepts(value) { errors.append(.init(pointer: setting.pointer, detail: setting.rule)) }
    }
}

/// `PATCH /v1/keys/{id}` body: any of `POST /v1/keys`' fields; those given replace the key's.
/// A change of `overflow` drops the old mode's `max_delay`/`max_queue_delay`/`max_depth` unless
/// given again; the result is checked by every rule of a new key.
struct KeyPatchSpec: Decodable {
    var name: String?
    var scopes: [Scope]?
    var policies: [Policy]?
    var quota_per_day: Int?
    var overflow: KeyPlan.Overflow?
    var max_delay: Double?
    var max_queue_delay: Double?
    var max_depth: Int?
    var output: PredictionOutput?
    var on_redis_failure: KeyPlan.RedisFailureMode?
    var retry_after_jitter: Double?
    var max_in_flight: Int?
    var expires_at: Date?
    var tenant: String?

    static func decode(_ body: [UInt8]) throws(Problem) -> KeyPatchSpec {
        try StrictBody.decode(KeyPatchSpec.self, from: body, shape: KeySpec.shape)
    }

    /// The key's settings with this change, validated as a new key's are.
    func applied(to record: KeyRecord) throws(Problem) -> KeySpec {
        let plan = record.plan
        let overflow = overflow ?? plan.overflow
        let kept = overflow == plan.overflow
        let spec = KeySpec(
            name: name ?? record.name, scopes: scopes ?? record.scopes, policies: policies ?? plan.policies,
            quota_per_day: quota_per_day ?? plan.quotaPerDay, overflow: overflow,
            max_delay: max_delay ?? (kept ? plan.maxDelay : nil), max_queue_delay: max_queue_delay ?? (kept ? plan.maxQueueDelay : nil),
            max_depth: max_depth ?? (kept ? plan.maxDepth : nil), output: output ?? record.output,
            on_redis_failure: on_redis_failure ?? plan.onRedisFailure, retry_after_jitter: retry_after_jitter ?? plan.retryAfterJitter,
            max_in_flight: max_in_flight ?? plan.maxInFlight, expires_at: expires_at ?? record.expiresAt,
            tenant: tenant ?? record.tenant)
        try spec.validate()
        return spec
    }
}

extension KeyRecord {
    /// Takes every setting of `spec` (not the id, secrets or creation time).
    mutating func apply(_ spec: KeySpec) {
        name = spec.name
        scopes = Array(Set(spec.scopes)).sorted()
        plan = KeyPlan(
            policies: spec.policies ?? [KeyPlan.defaultPolicy], quotaPerDay: spec.quota_per_day, overflow: spec.overflow ?? .reject,
            maxDelay: spec.max_delay, maxQueueDelay: spec.max_queue_delay, maxDepth: spec.max_depth,
            retryAfterJitter: spec.retry_after_jitter, maxInFlight: spec.max_in_flight, onRedisFailure: spec.on_redis_failure)
        output = spec.output
        expiresAt = spec.expires_at
        tenant = spec.tenant.flatMap { $0.isEmpty ? nil : $0 }
    }
}

/// `POST /v1/keys/{id}/rotate` body (optional).
struct RotateSpec: Decodable {
    var grace_period: Double?

    static func decode(_ body: [UInt8]) throws(Problem) -> RotateSpec {
        guard !body.isEmpty else { return RotateSpec() }
        let spec = try StrictBody.decode(RotateSpec.self, from: body, shape: .object(["grace_period": .value]))
        guard (spec.grace_period ?? 0) >= 0, (spec.grace_period ?? 0) <= 30 * 86_400 else {
            throw Problem.invalid([.init(pointer: "/grace_period", detail: "between 0 and 30 days in seconds")])
        }
        return spec
    }
}

/// A key as the API shows it: never a hash; the full key only in the response that creates it.
struct KeyView: Encodable {
    var id: String
    var name: String
    var scopes: [Scope]
    var policies: [Policy]
    var quota_per_day: Int?
    var overflow: KeyPlan.Overflow
    /// The effective deferral settings of the key's overflow mode (absent for `reject`).
    var max_delay: Double?
    var max_queue_delay: Double?
    var max_depth: Int?
    var output: PredictionOutput
    var on_redis_failure: KeyPlan.RedisFailureMode
    var retry_after_jitter: Double
    var max_in_flight: Int?
    var expires_at: Date?
    var tenant: String?
    var created_at: Date
    var key: String?

    init(_ record: KeyRecord, key: APIKey? = nil) {
        id = record.id
        name = record.name
        scopes = record.scopes
        let plan = record.plan
        policies = plan.policies
        quota_per_day = plan.quotaPerDay
        overflow = plan.overflow
        switch plan.overflow {
        case .reject: break
        case .delay: (max_delay, max_depth) = (plan.effectiveMaxDelay, plan.effectiveMaxDepth)
        case .queue: (max_queue_delay, max_depth) = (plan.effectiveMaxQueueDelay, plan.effectiveMaxDepth)
        }
        output = record.effectiveOutput
        on_redis_failure = plan.effectiveOnRedisFailure
        retry_after_jitter = plan.effectiveRetryAfterJitter
        max_in_flight = plan.maxInFlight
        expires_at = record.expiresAt
        tenant = record.tenant
        created_at = record.createdAt
        self.key = key?.revealed
    }
}

