import Foundation
import Hummingbird
import SluiceAuth
import SluiceCore

/// `/v1/tenants`: customers whose keys share budgets, created, listed, shown, changed and deleted
/// (scope `admin`). Every change is announced to every replica; a tenant's limiter state is kept
/// across changes for every policy whose name stays.
struct TenantRoutes {
    let admission: Admission
    let tenants: TenantStore
    let keys: KeyStore
    let authenticator: KeyAuthenticator
    let metrics: ServiceMetrics

    var collection: RouteCollection<SluiceRequestContext> {
        let router = RouteCollection(context: SluiceRequestContext.self)
        router.post("/v1/tenants") { request, context in
            try await admission.admit(request, context, scopes: [.admin]) { _ in
                let body = try await request.collectedBody(limit: context.maxUploadSize)
                guard request.mediaType == "application/json" else { throw Problem.unsupportedMediaType(["application/json"]) }
                let spec = try TenantSpec.decode(body)
                let record = TenantRecord(
                    id: TenantRecord.generateID(), name: spec.name, policies: spec.policies ?? [], quotaPerDay: spec.quota_per_day)
                guard try await storeCall(context, { try await tenants.create(record) }) else { throw Problem.conflict("Tenant id collision; retry.") }
                return try Response.json(TenantView(record), status: .created)
            }
        }

        router.get("/v1/tenants") { request, context in
            try await admission.admit(request, context, scopes: [.admin]) { _ in
                try Response.json(["tenants": try await storeCall(context) { try await tenants.list() }.map { TenantView($0) }])
            }
        }

        router.get("/v1/tenants/:id") { request, context in
            try await admission.admit(request, context, scopes: [.admin]) { _ in
                let tenant = try await existing(context)
                return try Response.json(TenantView(tenant, keys: try await members(of: tenant, context).map(\.id)))
            }
        }

        /// Changes the tenant's name or budgets in place; its keys' requests see the change at once.
        router.patch("/v1/tenants/:id") { request, context in
            try await admission.admit(request, context, scopes: [.admin]) { _ in
                let tenant = try await existing(context)
                let body = try await request.collectedBody(limit: context.maxUploadSize)
                guard ["application/json", "application/merge-patch+json"].contains(request.mediaType ?? "") else {
                    throw Problem.unsupportedMediaType(["application/json", "application/merge-patch+json"])
                }
                let changed = try TenantPatchSpec.decode(body).applied(to: tenant)
                guard try await storeCall(context, { try await tenants.update(changed) }) else { throw Problem.notFound("No such tenant.") }
                return try Response.json(TenantView(changed))
            }
        }

        /// Refused (409) while keys belong to the tenant, unless `?cascade=true`: then its keys are
        /// revoked first.
        router.delete("/v1/tenants/:id") { request, context in
            try await admission.admit(request, context, scopes: [.admin]) { _ in
                let tenant = try await existing(context)
                let members = try await members(of: tenant, context)
                if !members.isEmpty {
                    guard request.uri.queryParameters.get("cascade") == "true" else {
                        throw Problem.conflict("This tenant has \(members.count) keys; revoke them first, or delete with ?cascade=true.")
                    }
                    for key in members {
                        _ = try await storeCall(context) { try await keys.delete(key.id) }
                        authenticator.invalidate(key.id)
                    }
                }
                _ = try await storeCall(context) { try await tenants.delete(tenant.id) }
                return Response(status: .noContent)
            }
        }
        return router
    }

    private func existing(_ context: SluiceRequestContext) async throws -> TenantRecord {
        guard let id = context.parameters.get("id"), let record = try await storeCall(context, { try await tenants.get(id) }) else {
            throw Problem.notFound("No such tenant.")
        }
        return record
    }

    /// The keys that belong to `tenant` (an admin's request: every key record is read).
    private func members(of tenant: TenantRecord, _ context: SluiceRequestContext) async throws -> [KeyRecord] {
        try await storeCall(context) { try await keys.list() }.filter { $0.tenant == tenant.id }
    }

    private func storeCall<T>(_ context: SluiceRequestContext, _ call: () async throws -> T) async throws(Problem) -> T {
        try await Problem.storeCall("tenant store", metrics: metrics, logger: context.logger, call)
    }
}
