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

    public init(client: any RedisCommands) {
        self.client = client
    }

    static func redisKey(_ id: String) -> String { Keyspace.apiKey(id) }

    /// Stores a new record; false when the id is taken.
    public func create(_ record: KeyRecord) async throws(KeyStoreError) -> Bool {
        let reply = try await run(RedisCommand("SET", Self.redisKey(record.id), try encode(record), "NX"))
        guard reply.string == "OK" else { return false }
        _ = try await run(RedisCommand("SADD", Keyspace.apiKeyIDs, record.id))
        // Replicas that cached this id as unknown forget that at once.
        try await announce(record.id)
        return true
    }

    public func get(_ id: String) async throws(KeyStoreError) -> KeyRecord? {
        guard APIKey.isValidID(id) else { return nil }
        let reply = try await run(RedisCommand("GET", Self.redisKey(id)))
        guard case .bulkString(let bytes) = reply else {
            // A miss decodes a record too, so that it costs what a hit does: the time of a failed
            // authentication does not tell whether the id exists.
            _ = try? Self.decoder.decode(KeyRecord.self, from: Self.decoy)
            return nil
        }
        do {
            return try Self.decoder.decode(KeyRecord.self, from: Data(bytes))
        } catch {
            throw .corruptRecord(id: id)
        }
    }

    /// A typical stored record (two policies, a quota, one secret), decoded on a miss.
    private static let decoy: Data = {
        let record = KeyRecord(
            id: "decoydecoy00", name: "a typical key name", scopes: [.predict],
            plan: KeyPlan(policies: [KeyPlan.defaultPolicy, KeyPlan.defaultPolicy], quotaPerDay: 10_000),
            secrets: [.init(hash: KeyHash(digest: Array(repeating: 0xA5, count: 32)))])
        return (try? encoder.encode(record)) ?? Data()
    }()

    /// The ids of every stored key.
    public func ids() async throws(KeyStoreError) -> [String] {
        try await run(RedisCommand("SMEMBERS", Keyspace.apiKeyIDs)).array?.compactMap(\.string) ?? []
    }

    /// All records, by id.
    public func list() async throws(KeyStoreError) -> [KeyRecord] {
        let ids = try await ids()
        var records: [KeyRecord] = []
        for id in ids.sorted() {
            if let record = try await get(id) { records.append(record) }
        }
        return records
    }

    /// Replaces an existing record and tells every replica.
    public func update(_ record: KeyRecord) async throws(KeyStoreError) -> Bool {
        let reply = try await run(RedisCommand("SET", Self.redisKey(record.id), try encode(record), "XX"))
        try await announce(record.id)
        return reply.string == "OK"
    }

    /// Revokes a key; false when there was none.
    public func delete(_ id: String) async throws(KeyStoreError) -> Bool {
        guard APIKey.isValidID(id) else { return false }
        let removed = try await run(RedisCommand("DEL", Self.redisKey(id))).int ?? 0
        _ = try await run(RedisCommand("SREM", Keyspace.apiKeyIDs, id))
        try await announce(id)
        return removed > 0
    }

    private func announce(_ id: String) async throws(KeyStoreError) {
        _ = try await run(RedisCommand("PUBLISH", Self.invalidationChannel, id))
    }

    private func run(_ command: RedisCommand) async throws(KeyStoreError) -> RedisReply {
        try await client.send(command, failing: KeyStoreError.self)
    }

    private func encode(_ record: KeyRecord) throws(KeyStoreError) -> String {
        do {
            return String(decoding: try Self.encoder.encode(record), as: UTF8.self)
        } catch {
            throw .corruptRecord(id: record.id)
        }
    }

    static let encoder = JSONEncoder.sluice
    static let decoder = JSONDecoder.sluice
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
