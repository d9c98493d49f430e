import Foundation
import Hummingbird
import SluiceAuth
import SluiceCore
import SluiceLimiter

extension SluiceServer {
    func addKeyRoutes(to router: Router<SluiceRequestContext>) {
        router.post("/v1/keys") { request, context in
            try await guarded(request, context, scopes: [.admin]) { _ in
                let body = try await request.collectedBody(limit: context.maxUploadSize)
                guard request.mediaType == "application/json" else { throw Problem.unsupportedMediaType(["application/json"]) }
                let spec = try KeySpec.decode(body)
                let key = APIKey.generate()
                var record = KeyRecord(
                    id: key.id, name: spec.name, scopes: spec.scopes, policies: spec.policies ?? [KeyRecord.defaultPolicy],
                    quotaPerDay: spec.quota_per_day, overflow: spec.overflow ?? .reject, expiresAt: spec.expires_at,
                    secrets: [.init(hash: key.hash)])
                record.maxDelay = spec.max_delay
                record.maxQueueDelay = spec.max_queue_delay
                record.maxDepth = spec.max_depth
                record.output = spec.output
                record.onRedisFailure = spec.on_redis_failure
                record.retryAfterJitter = spec.retry_after_jitter
                guard try await storeCall({ try await keys.create(record) }) else { throw Problem.conflict("Key id collision; retry.") }
                return try Response.json(KeyView(record, key: key), status: .created)
            }
        }

        router.get("/v1/keys") { request, context in
            try await guarded(request, context, scopes: [.admin]) { _ in
                try Response.json(["keys": try await storeCall { try await keys.list() }.map { KeyView($0) }])
            }
        }

        router.get("/v1/keys/:id") { request, context in
            try await guarded(request, context, scopes: [.admin]) { _ in
                try Response.json(KeyView(try await existing(context)))
            }
        }

        router.delete("/v1/keys/:id") { request, context in
            try await guarded(request, context, scopes: [.admin]) { _ in
                let record = try await existing(context)
                _ = try await storeCall { try await keys.delete(record.id) }
                access.authenticator.invalidate(record.id)
                return Response(status: .noContent)
            }
        }

        /// New secret; the old one keeps working for `grace_period` seconds (default 0).
        router.post("/v1/keys/:id/rotate") { request, context in
            try await guarded(request, context, scopes: [.admin]) { _ in
                var record = try await existing(context)
                let body = try await request.collectedBody(limit: context.maxUploadSize)
                guard body.isEmpty || request.mediaType == "application/json" else { throw Problem.unsupportedMediaType(["application/json"]) }
                let grace = try RotateSpec.decode(body).grace_period ?? 0
                let now = Date()
                let graceEnd = now.addingTimeInterval(grace)
                let key = APIKey.generate(id: record.id)
                // Old secrets live on until the grace period ends (or sooner, if they already expire).
                let outgoing = record.secrets.compactMap { old -> KeyRecord.StoredSecret? in
                    let until = min(old.validUntil ?? graceEnd, graceEnd)
                    return until > now ? .init(hash: old.hash, validUntil: until) : nil
                }
                record.secrets = outgoing + [.init(hash: key.hash)]
                // Deleted meanwhile: a key that would never work must not be handed out.
                guard try await storeCall({ try await keys.update(record) }) else { throw Problem.notFound("No such key.") }
                access.authenticator.invalidate(record.id)
                return try Response.json(KeyView(record, key: key))
            }
        }
    }

    private func existing(_ context: SluiceRequestContext) async throws -> KeyRecord {
        guard let id = context.parameters.get("id"), let record = try await storeCall({ try await keys.get(id) }) else {
            throw Problem.notFound("No such key.")
        }
        return record
    }

    private func storeCall<T>(_ call: () async throws -> T) async throws(Problem) -> T {
        do {
            return try await call()
        } catch {
            throw Problem.storeFailure("key store", cause: error, metrics: metrics, logger: logger)
        }
    }
}

/// `POST /v1/keys` body.
struct KeySpec: Decodable {
    var name: String
    var scopes: [Scope]
    var policies: [Policy]?
    var quota_per_day: Int?
    var overflow: KeyRecord.Overflow?
    var max_delay: Double?
    var max_queue_delay: Double?
    var max_depth: Int?
    var output: PredictionOutput?
    var on_redis_failure: KeyRecord.RedisFailureMode?
    var retry_after_jitter: Double?
    var expires_at: Date?

    /// Control characters (NUL, BEL, …) and bidirectional overrides (U+202E turns `txt.exe` into
    /// `exe.txt` on screen) have no place in a key's name: logs and admin screens show it.
    static func isInvisible(_ scalar: Unicode.Scalar) -> Bool {
        scalar.properties.generalCategory == .control || (0x202A...0x202E).contains(scalar.value) || (0x2066...0x2069).contains(scalar.value)
            || scalar.value == 0x200E || scalar.value == 0x200F
    }

    /// Holding a request longer than this would outlast load balancers' and clients' timeouts.
    static let maximumDelay = 30.0

    /// The fields `POST /v1/keys` takes; anything else is refused.
    static let shape = BodyShape.object([
        "name": .value, "scopes": .value, "quota_per_day": .integer, "overflow": .value, "max_delay": .value,
        "max_queue_delay": .value, "max_depth": .integer, "output": .value, "expires_at": .value, "on_redis_failure": .value,
        "retry_after_jitter": .value,
        "policies": .array(of: .object(["name": .value, "rate": .integer, "period": .value, "burst": .integer])),
    ])

    static func decode(_ body: [UInt8]) throws(Problem) -> KeySpec {
        let spec = try StrictBody.decode(KeySpec.self, from: body, shape: shape)
        var errors: [Problem.FieldError] = []
        // Counted in code points, as JSON Schema's maxLength counts (openapi.yaml).
        if spec.name.isEmpty || spec.name.unicodeScalars.count > 64 || spec.name.unicodeScalars.contains(where: Self.isInvisible) {
            errors.append(.init(pointer: "/name", detail: "1-64 characters, none of them control or bidirectional-override characters"))
        }
        if spec.scopes.isEmpty { errors.append(.init(pointer: "/scopes", detail: "at least one scope")) }
        for (index, policy) in (spec.policies ?? []).enumerated() {
            if let problem = policy.validationError { errors.append(.init(pointer: "/policies/\(index)", detail: problem)) }
        }
        if let policies = spec.policies,
            policies.isEmpty || Set(policies.map(\.name)).count != policies.count
                || policies.contains(where: { AccessControl.reservedPolicyNames.contains($0.name) })
        {
            errors.append(.init(
                pointer: "/policies",
                detail: "1 or more policies with unique names other than \(AccessControl.reservedPolicyNames.sorted().map { "'\($0)'" }.joined(separator: ", ")) (Sluice's own)"))
        }
        if let quota = spec.quota_per_day, quota < 1 || Policy.daily(quota).validationError != nil {
            errors.append(.init(pointer: "/quota_per_day", detail: "must be at least 1 and below 2^51"))
        }
        let overflow = spec.overflow ?? .reject
        if let delay = spec.max_delay {
            if overflow != .delay { errors.append(.init(pointer: "/max_delay", detail: "only with \"overflow\": \"delay\"")) }
            if !(delay > 0 && delay <= maximumDelay) { errors.append(.init(pointer: "/max_delay", detail: "seconds, more than 0 and at most \(Int(maximumDelay))")) }
        }
        if let delay = spec.max_queue_delay {
            if overflow != .queue { errors.append(.init(pointer: "/max_queue_delay", detail: "only with \"overflow\": \"queue\"")) }
            if !(delay > 0 && delay <= 86_400) { errors.append(.init(pointer: "/max_queue_delay", detail: "seconds, more than 0 and at most 86400")) }
        }
        if let depth = spec.max_depth {
            if overflow == .reject { errors.append(.init(pointer: "/max_depth", detail: "only with \"overflow\": \"queue\" or \"delay\"")) }
            if !(1...1_000_000).contains(depth) { errors.append(.init(pointer: "/max_depth", detail: "between 1 and 1000000")) }
        }
        if spec.on_redis_failure == .local, Set(spec.scopes) != [.predict] {
            errors.append(.init(pointer: "/on_redis_failure", detail: "\"local\" only for keys whose only scope is \"predict\"; others fail closed"))
        }
        if let jitter = spec.retry_after_jitter, !(jitter >= 0 && jitter <= 60) {
            errors.append(.init(pointer: "/retry_after_jitter", detail: "seconds, from 0 to 60"))
        }
        if let expiry = spec.expires_at, expiry <= Date() { errors.append(.init(pointer: "/expires_at", detail: "must be in the future")) }
        guard errors.isEmpty else { throw Problem.invalid(errors) }
        return spec
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
    var overflow: KeyRecord.Overflow
    /// The effective deferral settings of the key's overflow mode (absent for `reject`).
    var max_delay: Double?
    var max_queue_delay: Double?
    var max_depth: Int?
    var output: PredictionOutput
    var on_redis_failure: KeyRecord.RedisFailureMode
    var retry_after_jitter: Double
    var expires_at: Date?
    var created_at: Date
    var key: String?

    init(_ record: KeyRecord, key: APIKey? = nil) {
        id = record.id
        name = record.name
        scopes = record.scopes
        policies = record.policies
        quota_per_day = record.quotaPerDay
        overflow = record.overflow
        switch record.overflow {
        case .reject: break
        case .delay: (max_delay, max_depth) = (record.effectiveMaxDelay, record.effectiveMaxDepth)
        case .queue: (max_queue_delay, max_depth) = (record.effectiveMaxQueueDelay, record.effectiveMaxDepth)
        }
        output = record.effectiveOutput
        on_redis_failure = record.onRedisFailure ?? .closed
        retry_after_jitter = record.retryAfterJitter ?? 0
        expires_at = record.expiresAt
        created_at = record.createdAt
        self.key = key?.revealed
    }
}

/// The JSON Pointer of the field a `DecodingError` complains about.
func pointer(of error: any Error) -> String {
    let path: [any CodingKey]
    switch error as? DecodingError {
    case .keyNotFound(let key, let context)?: path = context.codingPath + [key]
    case .typeMismatch(_, let context)?, .valueNotFound(_, let context)?, .dataCorrupted(let context)?: path = context.codingPath
    default: path = []
    }
    return path.map { "/" + ($0.intValue.map(String.init) ?? $0.stringValue) }.joined()
}
