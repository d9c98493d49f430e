import Foundation
import SluiceCore
import SluiceRedis

/// Tenant records in Redis: a JSON string at `sluice:tenant:{t:<id>}`, indexed by `sluice:tenants`.
/// Every change is announced on ``changeChannel`` so that replicas drop their cached copy at once.
public struct TenantStore: Sendable {
    public static let changeChannel = Keyspace.tenantChanges
    public let client: any RedisCommands

    public init(client: any RedisCommands) {
        self.client = client
    }

    /// Stores a new record; false when the id is taken.
    public func create(_ record: TenantRecord) async throws(KeyStoreError) -> Bool {
        let reply = try await run(RedisCommand("SET", Keyspace.tenant(record.id), try encode(record), "NX"))
        guard reply.string == "OK" else { return false }
        _ = try await run(RedisCommand("SADD", Keyspace.tenantIDs, record.id))
        try await announce(record.id)
        return true
    }

    public func get(_ id: String) async throws(KeyStoreError) -> TenantRecord? {
        guard TenantRecord.isValidID(id) else { return nil }
        guard case .bulkString(let bytes) = try await run(RedisCommand("GET", Keyspace.tenant(id))) else { return nil }
        do {
            return try Self.decoder.decode(TenantRecord.self, from: Data(bytes))
        } catch {
            throw .corruptRecord(id: id)
        }
    }

    /// All records, by id.
    public func list() async throws(KeyStoreError) -> [TenantRecord] {
        let ids = try await run(RedisCommand("SMEMBERS", Keyspace.tenantIDs)).array?.compactMap(\.string) ?? []
        var records: [TenantRecord] = []
        for id in ids.sorted() {
            if let record = try await get(id) { records.append(record) }
        }
        return records
    }

    /// Replaces an existing record and tells every replica; false when there was none.
    public func update(_ record: TenantRecord) async throws(KeyStoreError) -> Bool {
        let reply = try await run(RedisCommand("SET", Keyspace.tenant(record.id), try encode(record), "XX"))
        try await announce(record.id)
        return reply.string == "OK"
    }

    /// Deletes a tenant; false when there was none. Its keys are the caller's business.
    public func delete(_ id: String) async throws(KeyStoreError) -> Bool {
        guard TenantRecord.isValidID(id) else { return false }
        let removed = try await run(RedisCommand("DEL", Keyspace.tenant(id))).int ?? 0
        _ = try await run(RedisCommand("SREM", Keyspace.tenantIDs, id))
        try await announce(id)
        return removed > 0
    }

    private func announce(_ id: String) async throws(KeyStoreError) {
        _ = try await run(RedisCommand("PUBLISH", Self.changeChannel, id))
    }

    private func run(_ command: RedisCommand) async throws(KeyStoreError) -> RedisReply {
        try await client.send(command, failing: KeyStoreError.self)
    }

    private func encode(_ record: TenantRecord) throws(KeyStoreError) -> String {
        do {
            return String(decoding: try Self.encoder.encode(record), as: UTF8.self)
        } catch {
            throw .corruptRecord(id: record.id)
        }
    }

    static let encoder = JSONEncoder.sluice
    static let decoder = JSONDecoder.sluice
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
