import Foundation
import SluiceCore
import SluiceRedis

/// Tenant records in Redis: a JSON string at `sluice:tenant:{t:<id>}`, indexed by `sluice:tenants`.
/// Every change is announced on ``changeChannel`` so that replicas drop their cached copy at once.
public struct TenantStore: Sendable {
    public static let changeChannel = Keyspace.tenantChanges
    private let records: RecordStore<TenantRecord>

    public init(client: any RedisCommands) {
        records = RecordStore(client: client, redisKey: Keyspace.tenant, index: Keyspace.tenantIDs, channel: Self.changeChannel)
    }

    /// Stores a new record; false when the id is taken.
    public func create(_ record: TenantRecord) async throws(KeyStoreError) -> Bool {
        try await records.create(record, id: record.id)
    }

    public func get(_ id: String) async throws(KeyStoreError) -> TenantRecord? {
        guard TenantRecord.isValidID(id), let bytes = try await records.stored(id) else { return nil }
        return try records.decode(bytes, id: id)
    }

    /// All records, by id.
    public func list() async throws(KeyStoreError) -> [TenantRecord] {
        var records: [TenantRecord] = []
        for id in try await self.records.ids().sorted() {
            if let record = try await get(id) { records.append(record) }
        }
        return records
    }

    /// Replaces an existing record and tells every replica; false when there was none.
    public func update(_ record: TenantRecord) async throws(KeyStoreError) -> Bool {
        try await records.update(record, id: record.id)
    }

    /// Deletes a tenant; false when there was none. Its keys are the caller's business.
    public func delete(_ id: String) async throws(KeyStoreError) -> Bool {
        guard TenantRecord.isValidID(id) else { return false }
        return try await records.delete(id)
    }
}

/// The tenants this replica has looked up, each kept for ``lifetime`` (and dropped at once when a
/// change is announced): a request of a tenant's key costs no Redis call for its tenant.
public final class TenantDirectory: Sendable {
    public let store: TenantStore
    public let lifetime: Duration
    private let cache = SharedLRUCache<String, (record: TenantRecord?, fetched: ContinuousClock.Instant)>(capacity: 10_000)

    public init(store: TenantStore, lifetime: Duration = .milliseconds(500)) {
        self.store = store
        self.lifetime = lifetime
    }

    /// The tenant, from the cache while fresh, else from Redis; when Redis fails, the last known
    /// record however old (a tenant's budget is never dropped because Redis hiccuped), else the error.
    public func get(_ id: String) async throws(KeyStoreError) -> TenantRecord? {
        let now = ContinuousClock.now
        let cached = cache.get(id)
        if let cached, now - cached.fetched < lifetime { return cached.record }
        do {
            let record = try await store.get(id)
            cache.set(id, (record, now))
            return record
        } catch {
            if let record = cached?.record { return record }
            throw error
        }
    }

    /// The cached record, however old, without a Redis call (local denial, degraded mode).
    public func lastKnown(_ id: String) -> TenantRecord? { cache.get(id)?.record }

    public func invalidate(_ id: String) { cache.remove(id) }

    public func invalidateAll() { cache.removeAll() }
}
