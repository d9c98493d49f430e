import Foundation
import Hummingbird
import SluiceAuth
import SluiceCore
import SluiceLimiter
import SluiceRedis

/// `/v1/keys`: keys created, listed, shown, changed, rotated and revoked (scope `admin`). Every
/// change is announced to every replica by the key store; this replica forgets its copy at once.
struct KeyRoutes {
    let admission: Admission
    let keys: KeyStore
    let tenants: TenantStore
    /// Forgets this replica's cached copy of a changed key at once (others hear of it by pub/sub).
    let authenticator: KeyAuthenticator
    /// Moves a key's limiter state when it changes tenant.
    let limiter: RateLimiter
    let metrics: ServiceMetrics

    var collection: RouteCollection<SluiceRequestContext> {
        let router = RouteCollection(context: SluiceRequestContext.self)
        router.post("/v1/keys") { request, context in
            try await admission.admit(request, context, scopes: [.admin]) { _ in
                let body = try await request.collectedBody(limit: context.maxUploadSize)
                guard request.mediaType == "application/json" else { throw Problem.unsupportedMediaType(["application/json"]) }
                let spec = try KeySpec.decode(body)
                try await checkTenant(spec.tenant, context)
                let key = APIKey.generate()
                var record = KeyRecord(id: key.id, name: spec.name, scopes: spec.scopes, secrets: [.init(hash: key.hash)])
                record.apply(spec)
                guard try await storeCall(context, { try await keys.create(record) }) else { throw Problem.conflict("Key id collision; retry.") }
                return try Response.json(KeyView(record, key: key), status: .created)
            }
        }

        router.get("/v1/keys") { request, context in
            try await admission.admit(request, context, scopes: [.admin]) { _ in
                try Response.json(["keys": try await storeCall(context) { try await keys.list() }.map { KeyView($0) }])
            }
        }

        router.get("/v1/keys/:id") { request, context in
            try await admission.admit(request, context, scopes: [.admin]) { _ in
                try Response.json(KeyView(try await existing(context)))
            }
        }

        router.delete("/v1/keys/:id") { request, context in
            try await admission.admit(request, context, scopes: [.admin]) { _ in
                let record = try await existing(context)
                _ = try await storeCall(context) { try await keys.delete(record.id) }
                authenticator.invalidate(record.id)
                return Response(status: .noContent)
            }
        }

        /// New secret; the old one keeps working for `grace_period` seconds (default 0).
        router.post("/v1/keys/:id/rotate") { request, context in
            try await admission.admit(request, context, scopes: [.admin]) { _ in
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
                guard try await storeCall(context, { try await keys.update(record) }) else { throw Problem.notFound("No such key.") }
                authenticator.invalidate(record.id)
                return try Response.json(KeyView(record, key: key))
            }
        }
        /// Changes a key's settings (policies, quota, overflow, output, ...) in place: the id and
        /// secrets stay, and so does the limiter state of every policy whose name stays.
        router.patch("/v1/keys/:id") { request, context in
            try await admission.admit(request, context, scopes: [.admin]) { _ in
                var record = try await existing(context)
                let body = try await request.collectedBody(limit: context.maxUploadSize)
                guard ["application/json", "application/merge-patch+json"].contains(request.mediaType ?? "") else {
                    throw Problem.unsupportedMediaType(["application/json", "application/merge-patch+json"])
                }
                let spec = try KeyPatchSpec.decode(body).applied(to: record)
                try await checkTenant(spec.tenant, context)
                let before = record
                record.apply(spec)
                guard try await storeCall(context, { try await keys.update(record) }) else { throw Problem.notFound("No such key.") }
                if before.tenant != record.tenant { try await moveLimiterState(of: before, to: record, context) }
                authenticator.invalidate(record.id)
                return try Response.json(KeyView(record))
            }
        }
        return router
    }

    private func existing(_ context: SluiceRequestContext) async throws -> KeyRecord {
        guard let id = context.parameters.get("id"), let record = try await storeCall(context, { try await keys.get(id) }) else {
            throw Problem.notFound("No such key.")
        }
        return record
    }

    /// A tenant named by a key body must exist (`""` names none).
    private func checkTenant(_ tenant: String?, _ context: SluiceRequestContext) async throws {
        guard let tenant, !tenant.isEmpty else { return }
        guard try await storeCall(context, { try await tenants.get(tenant) }) != nil else {
            throw Problem.invalid([.init(pointer: "/tenant", detail: KeySpec.noSuchTenant)])
        }
    }

    /// A key moved into, out of or between tenants keeps its own limiter state: each policy's
    /// TAT is copied from the old limiter key's slot to the new one's (the later of the two, if
    /// both exist) and the old one deleted. Not atomic across the two slots: a request decided
    /// meanwhile under the old name may be forgotten, at most one burst (a move is an admin's
    /// rare act).
    private func moveLimiterState(of before: KeyRecord, to after: KeyRecord, _ context: SluiceRequestContext) async throws {
        func name(_ record: KeyRecord, _ policy: Policy) -> String {
            guard let tenant = record.tenant else { return limiter.redisKey(for: record.id, policy: policy) }
            return limiter.redisKey(for: TenantRecord.limiterKey(tenant), policy: policy.owned(by: .key(record.id)))
        }
        for policy in before.plan.limiterPolicies + before.plan.shadowPolicies {
            let (from, to) = (name(before, policy), name(after, policy))
            try await storeCall(context) {
                let moved = try await limiter.client.send(RedisCommand("GET", from)).string.flatMap { Int64($0) }
                let present = try await limiter.client.send(RedisCommand("GET", to)).string.flatMap { Int64($0) }
                if let tat = [moved, present].compactMap({ $0 }).max(), moved != nil {
                    _ = try await limiter.client.send(RedisCommand("SET", to, String(tat), "PXAT", String(tat / 1000)))
                }
                _ = try await limiter.client.send(RedisCommand("DEL", from))
            }
        }
    }

    private func storeCall<T>(_ context: SluiceRequestContext, _ call: () async throws -> T) async throws(Problem) -> T {
        try await Problem.storeCall("key store", metrics: metrics, logger: context.logger, call)
    }
}
