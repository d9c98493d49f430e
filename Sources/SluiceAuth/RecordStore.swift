import Foundation
import SluiceCore
import SluiceRedis

/// JSON records in Redis the way keys and tenants are kept: each at its own key, an index set of
/// their ids, and every change announced on a channel so that replicas drop their cached copy.
struct RecordStore<Record: Codable & Sendable>: Sendable {
    let client: any RedisCommands
    /// The Redis key of the record with this id.
    let redisKey: @Sendable (String) -> String
    let index: String
    let channel: String

    /// Stores a new record; false when the id is taken.
    func create(_ record: Record, id: String) async throws(KeyStoreError) -> Bool {
        let reply = try await run(RedisCommand("SET", redisKey(id), try encode(record, id: id), "NX"))
        guard reply.string == "OK" else { return false }
        _ = try await run(RedisCommand("SADD", index, id))
        // Replicas that cached this id as unknown forget that at once.
        try await announce(id)
        return true
    }

    /// The stored bytes of a record, `nil` when there is none.
    func stored(_ id: String) async throws(KeyStoreError) -> [UInt8]? {
        guard case .bulkString(let bytes) = try await run(RedisCommand("GET", redisKey(id))) else { return nil }
        return bytes
    }

    func decode(_ bytes: [UInt8], id: String) throws(KeyStoreError) -> Record {
        do {
            return try JSONDecoder.sluice.decode(Record.self, from: Data(bytes))
        } catch {
            throw .corruptRecord(id: id)
        }
    }

    /// The ids of every stored record.
    func ids() async throws(KeyStoreError) -> [String] {
        try await run(RedisCommand("SMEMBERS", index)).array?.compactMap(\.string) ?? []
    }

    /// Replaces an existing record and tells every replica; false when there was none.
    func update(_ record: Record, id: String) async throws(KeyStoreError) -> Bool {
        let reply = try await run(RedisCommand("SET", redisKey(id), try encode(record, id: id), "XX"))
        try await announce(id)
        return reply.string == "OK"
    }

    /// Deletes a record; false when there was none.
    func delete(_ id: String) async throws(KeyStoreError) -> Bool {
        let removed = try await run(RedisCommand("DEL", redisKey(id))).int ?? 0
        _ = try await run(RedisCommand("SREM", index, id))
        try await announce(id)
        return removed > 0
    }

    private func announce(_ id: String) async throws(KeyStoreError) {
        _ = try await run(RedisCommand("PUBLISH", channel, id))
    }

    private func run(_ command: RedisCommand) async throws(KeyStoreError) -> RedisReply {
        try await client.send(command, failing: KeyStoreError.self)
    }

    private func encode(_ record: Record, id: String) throws(KeyStoreError) -> String {
        do {
            return String(decoding: try JSONEncoder.sluice.encode(record), as: UTF8.self)
        } catch {
            throw .corruptRecord(id: id)
        }
    }
}
