import Foundation
import SluiceCore
import SluiceLimiter
import SluiceRedis

/// API-key records in Redis.
///
/// Each record is a JSON string at `sluice:key:{<id>}` (the same hash tag as the key's rate-limit
/// state, so both land in one Redis Cluster slot); `sluice:keys` indexes the ids. Every change is
/// announced on ``invalidationChannel`` so that replicas drop their cached copy at once.
public struct KeyStore: Sendable {
    public static let invalidationChannel = Keyspace.apiKeyChanges
    public let client: any RedisCommands
    private let records: RecordStore<KeyRecord>

    public init(client: any RedisCommands) {
        self.client = client
        records = RecordStore(client: client, redisKey: Keyspace.apiKey, index: Keyspace.apiKeyIDs, channel: Self.invalidationChannel)
    }

    /// Stores a new record; false when the id is taken.
    public func create(_ record: KeyRecord) async throws(KeyStoreError) -> Bool {
        try await records.create(record, id: record.id)
    }

    public func get(_ id: String) async throws(KeyStoreError) -> KeyRecord? {
        guard APIKey.isValidID(id) else { return nil }
        guard let bytes = try await records.stored(id) else {
            // A miss decodes a record too, so that it costs what a hit does: the time of a failed
            // authentication does not tell whether the id exists.
            _ = try? JSONDecoder.sluice.decode(KeyRecord.self, from: Self.decoy)
            return nil
        }
        return try records.decode(bytes, id: id)
    }

    /// A typical stored record (two policies, a quota, one secret), decoded on a miss.
    private static let decoy: Data = {
        let record = KeyRecord(
            id: "decoydecoy00", name: "a typical key name", scopes: [.predict],
            plan: KeyPlan(policies: [KeyPlan.defaultPolicy, KeyPlan.defaultPolicy], quotaPerDay: 10_000),
            secrets: [.init(hash: KeyHash(digest: Array(repeating: 0xA5, count: 32)))])
        return (try? JSONEncoder.sluice.encode(record)) ?? Data()
    }()

    /// The ids of every stored key.
    public func ids() async throws(KeyStoreError) -> [String] {
        try await records.ids()
    }

    /// All records, by id.
    public func list() async throws(KeyStoreError) -> [KeyRecord] {
        var records: [KeyRecord] = []
        for id in try await ids().sorted() {
            if let record = try await get(id) { records.append(record) }
        }
        return records
    }

    /// Replaces an existing record and tells every replica.
    public func update(_ record: KeyRecord) async throws(KeyStoreError) -> Bool {
        try await records.update(record, id: record.id)
    }

    /// Revokes a key; false when there was none.
    public func delete(_ id: String) async throws(KeyStoreError) -> Bool {
        guard APIKey.isValidID(id) else { return false }
        return try await records.delete(id)
    }
}

public enum KeyStoreError: Error, Sendable, CustomStringConvertible {
    case redis(RedisError)
    case corruptRecord(id: String)

    public var description: String {
        switch self {
        case .redis(let error): "key store unavailable: \(error)"
        case .corruptRecord(let id): "the record of key \(id) cannot be read"
        }
    }
}

extension KeyStoreError: RedisBackedError {
    public var redisCause: RedisError? {
        if case .redis(let error) = self { return error }
        return nil
    }
}
