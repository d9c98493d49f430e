import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import SluiceCore
import SluiceRedis

/// `Idempotency-Key` on `POST /v1/predict` (draft-ietf-httpapi-idempotency-key-header): a client
/// that retries — after a timeout, or a replica that died mid-request — with the same key gets the
/// first answer again (the same job, prediction or refusal) instead of a second job.
///
/// Records live at `sluice:idem:{<key id>}:<sha256 of the idempotency key>` (the API key's hash
/// tag), scoped to the API key, with a fingerprint (SHA-256) of the request body and the output
/// format. One Redis `SET … NX GET` both claims a new key (a short lease while it is served) and
/// reads an existing one. Answers are kept 24 h; a `429` only until its `Retry-After` (a retry
/// after that is a fresh attempt); a `5xx` is not kept (the client may retry).
struct IdempotencyStore: Sendable {
    let client: any RedisCommands
    static let lifetime: Duration = .seconds(24 * 3600)

    /// The header's value: an RFC 8941 string (`"…"`) or, as most clients send it, the bare value;
    /// 1–255 printable ASCII characters.
    static func parseKey(_ value: String) -> String? {
        var text = Substring(value)
        if text.count >= 2, text.first == "\"", text.last == "\"" { text = text.dropFirst().dropLast() }
        guard (1...255).contains(text.utf8.count), text.utf8.allSatisfy({ (0x20...0x7E).contains($0) && $0 != UInt8(ascii: "\"") }) else {
            return nil
        }
        return String(text)
    }

    static func fingerprint(_ body: [UInt8], output: String) -> String {
        var hasher = SHA256()
        hasher.update(data: body)
        hasher.update(data: Array("\u{0}\(output)".utf8))
        return hasher.finalize().map { String(format: "%02x", $0) }.joined()
    }

    /// What a stored record says about a request.
    enum Claim {
        /// New key: serve the request, then ``store(_:for:keyID:idempotencyKey:fingerprint:)``.
        case new
        /// The first request with this key is still being served.
        case inProgress
        /// The key was used for a different request.
        case mismatch
        /// The first answer, to send again.
        case replay(StoredAnswer)
    }

    struct StoredAnswer: Codable, Sendable {
        var fingerprint: String
        var status: Int
        var headers: [String: String]
        var body: String

        var response: Response {
            var fields = HTTPFields()
            for (name, value) in headers.sorted(by: { $0.key < $1.key }) {
                if let name = HTTPField.Name(name) { fields[name] = value }
            }
            return Response(status: .init(code: status), headers: fields, body: .init(byteBuffer: ByteBuffer(string: body)))
        }
    }

    private struct Pending: Codable { var fingerprint: String, pending = true }

    /// The limiter's request id for a request with this `Idempotency-Key` (``RateLimiter/check(key:policies:cost:horizon:usage:requestID:)``):
    /// a retry after a `503` whose limiter reply was lost is not charged twice. Scoped to the API
    /// key, since a tenant's keys share one limiter key; 128 bits of SHA-256.
    static func limiterRequestID(keyID: String, idempotencyKey: String) -> String {
        SHA256.hash(data: Array("\(keyID)\u{0}\(idempotencyKey)".utf8)).prefix(16).map { String(format: "%02x", $0) }.joined()
    }

    func redisKey(keyID: String, idempotencyKey: String) -> String {
        let digest = SHA256.hash(data: Array(idempotencyKey.utf8)).map { String(format: "%02x", $0) }.joined()
        return Keyspace.idempotency(keyID: keyID, digest: digest)
    }

    /// Claims the key for `lease` (how long serving may take), or reads what it holds.
    func claim(keyID: String, idempotencyKey: String, fingerprint: String, lease: Duration) async throws(RedisError) -> Claim {
        let pending = String(decoding: (try? JSONEncoder().encode(Pending(fingerprint: fingerprint))) ?? Data(), as: UTF8.self)
        let reply = try await client.send(
            RedisCommand("SET", redisKey(keyID: keyID, idempotencyKey: idempotencyKey), pending, "NX", "GET", "PX", String(max(1, Int(lease / .milliseconds(1))))))
        guard case .bulkString(let bytes) = reply else { return .new }
        if let answer = try? JSONDecoder().decode(StoredAnswer.self, from: Data(bytes)) {
            return answer.fingerprint == fingerprint ? .replay(answer) : .mismatch
        }
        let holder = try? JSONDecoder().decode(Pending.self, from: Data(bytes))
        return holder?.fingerprint == fingerprint ? .inProgress : .mismatch
    }

    /// Keeps `response` (whose body is `body`) as the answer to the key, or forgets the key when
    /// the answer is not one to repeat.
    func store(status: Int, headers: HTTPFields, body: [UInt8], keyID: String, idempotencyKey: String, fingerprint: String) async {
        let key = redisKey(keyID: keyID, idempotencyKey: idempotencyKey)
        let keep: Duration?
        switch status {
        case 429: keep = headers[.retryAfter].flatMap(Int.init).map { .seconds(max(1, $0)) }
        case 500...: keep = nil
        default: keep = Self.lifetime
        }
        guard let keep else { return await forget(keyID: keyID, idempotencyKey: idempotencyKey) }
        var kept: [String: String] = [:]
        for field in headers where Self.replayedHeaders.contains(field.name) { kept[field.name.canonicalName] = field.value }
        let answer = StoredAnswer(fingerprint: fingerprint, status: status, headers: kept, body: String(decoding: body, as: UTF8.self))
        guard let encoded = try? JSONEncoder().encode(answer) else { return }
        _ = try? await client.send(RedisCommand("SET", key, String(decoding: encoded, as: UTF8.self), "PX", String(Int(keep / .milliseconds(1)))))
    }

    /// Drops the lease after a failure that produced no answer to keep.
    func forget(keyID: String, idempotencyKey: String) async {
        _ = try? await client.send(RedisCommand("DEL", redisKey(keyID: keyID, idempotencyKey: idempotencyKey)))
    }

    /// What an answer is replayed with: its body's type and where its job is. Not the rate-limit
    /// headers of that moment.
    static let replayedHeaders: Set<HTTPField.Name> = [.contentType, .location, .retryAfter, .preferenceApplied, .sluiceDelay]
}

/// Collects a response body so it can be stored (answers to `/v1/predict` are small).
final class CollectingWriter: ResponseBodyWriter, @unchecked Sendable {
    private(set) var bytes: [UInt8] = []
    func write(_ buffer: ByteBuffer) async throws { bytes.append(contentsOf: buffer.readableBytesView) }
    func finish(_ trailingHeaders: HTTPFields?) async throws {}
}
