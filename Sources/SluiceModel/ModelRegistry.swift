import Foundation
import SluiceCore
import SluiceRedis

/// Signed model artifacts in Redis, and which one is active.
///
/// Layout (one hash tag, so the registry stays in one Redis Cluster slot):
/// - `sluice:{models}:artifact:<v>` — hash of `artifact` (the exact JSON bytes), `hmac` and `kid`
///   (the id of the signing key; absent on artifacts from before key ids: the `default` key);
/// - `sluice:{models}:versions` — set of versions; `sluice:{models}:next` — version counter;
/// - `sluice:{models}:active` — the active version; changes are published on ``activationChannel``;
/// - `sluice:{models}:previous` — the version active before it (kept by ``prune(retention:)``);
/// - `sluice:{models}:bootstrap-lock` — held by the one replica that trains version 1.
public struct ModelRegistry: Sendable {
    public static let activationChannel = Keyspace.Models.activations
    public let client: any RedisCommands
    public let signer: ArtifactSigner

    public init(client: any RedisCommands, signer: ArtifactSigner) {
        self.client = client
        self.signer = signer
    }

    private static func artifactKey(_ version: Int) -> String { Keyspace.Models.artifact(version) }

    /// Assigns the next version, signs and stores the artifact (it is not activated), and returns
    /// it as decoded from the stored bytes: exactly what replicas will load.
    public func store(_ candidate: ModelArtifact) async throws(ModelError) -> ModelArtifact {
        var artifact = candidate
        guard let version = try await run(RedisCommand("INCR", Keyspace.Models.nextVersion)).int else {
            throw .redis(.unexpectedReply("INCR answered no integer"))
        }
        artifact.version = version
        let bytes: [UInt8]
        do {
            bytes = Array(try Self.encoder.encode(artifact))
            artifact = try Self.decoder.decode(ModelArtifact.self, from: Data(bytes))
        } catch {
            throw .malformed(version: version)
        }
        let (keyID, signature) = signer.sign(bytes)
        _ = try await run(
            RedisCommand(arguments: [Array("HSET".utf8), Array(Self.artifactKey(version).utf8), Array("artifact".utf8), bytes,
                                     Array("hmac".utf8), Array(signature.utf8), Array("kid".utf8), Array(keyID.utf8)]))
        _ = try await run(RedisCommand("SADD", Keyspace.Models.versions, String(version)))
        return artifact
    }

    /// Loads a version, verifying its HMAC before decoding a single byte.
    public func load(_ version: Int) async throws(ModelError) -> ModelArtifact {
        try await loadSigned(version).artifact
    }

    /// Loads a version and names the key that signed it (``SigningKeyring/legacyKeyID`` for an
    /// artifact from before key ids). An id the ring does not list is refused like a bad HMAC.
    public func loadSigned(_ version: Int) async throws(ModelError) -> (artifact: ModelArtifact, keyID: String) {
        let (bytes, signature, keyID) = try await stored(version)
        guard signer.verify(bytes, signature: signature, keyID: keyID) else { throw .tampered(version: version) }
        guard let artifact = try? Self.decoder.decode(ModelArtifact.self, from: Data(bytes)), artifact.version == version,
            artifact.isWellFormed
        else { throw .malformed(version: version) }
        return (artifact, keyID ?? SigningKeyring.legacyKeyID)
    }

    /// The stored bytes, signature and key id of a version, unverified.
    private func stored(_ version: Int) async throws(ModelError) -> (bytes: [UInt8], signature: String, keyID: String?) {
        let reply = try await run(RedisCommand("HMGET", Self.artifactKey(version), "artifact", "hmac", "kid"))
        guard let fields = reply.array, fields.count == 3, case .bulkString(let bytes) = fields[0], let signature = fields[1].string else {
            throw .notFound(version: version)
        }
        return (bytes, signature, fields[2].string)
    }

    /// What ``resign()`` did: versions now signed by the active key, those already signed by it,
    /// and those that do not verify with any listed key (left as they are: re-signing bytes that
    /// fail verification would launder a tampered artifact).
    public struct Resigning: Sendable, Equatable {
        public var keyID: String
        public var resigned: [Int] = []
        public var unchanged: [Int] = []
        public var refused: [Int] = []
    }

    /// Signs every stored version with the active key, after verifying it with the key it names,
    /// so that a retired key can be dropped from the ring. Only `hmac` and `kid` are written
    /// (one `HSET`): a replica loading meanwhile reads either the old pair or the new one.
    public func resign() async throws(ModelError) -> Resigning {
        var result = Resigning(keyID: signer.keyring.activeKeyID)
        for version in try await versions() {
            let bytes: [UInt8], signature: String, keyID: String?
            do {
                (bytes, signature, keyID) = try await stored(version)
            } catch .notFound {
                continue  // pruned meanwhile
            }
            guard signer.verify(bytes, signature: signature, keyID: keyID) else {
                result.refused.append(version)
                continue
            }
            guard keyID != result.keyID else {
                result.unchanged.append(version)
                continue
            }
            let (activeID, fresh) = signer.sign(bytes)
            _ = try await run(RedisCommand("HSET", Self.artifactKey(version), "hmac", fresh, "kid", activeID))
            result.resigned.append(version)
        }
        return result
    }

    public func activeVersion() async throws(ModelError) -> Int? {
        try await run(RedisCommand("GET", Keyspace.Models.active)).int
    }

    /// Makes `version` the served model on every replica (after verifying it); the version it
    /// replaces is remembered as the previous one, which ``prune(retention:)`` keeps.
    public func activate(_ version: Int) async throws(ModelError) {
        _ = try await load(version)
        let replaced = try await run(RedisCommand("SET", Keyspace.Models.active, String(version), "GET")).int
        if let replaced, replaced != version {
            _ = try await run(RedisCommand("SET", Keyspace.Models.previous, String(replaced)))
        }
        _ = try await run(RedisCommand("PUBLISH", Self.activationChannel, String(version)))
    }

    /// Deletes stored versions beyond the newest `retention`, always keeping the active and the
    /// previously active one (the rollback target). Returns the versions deleted.
    @discardableResult
    public func prune(retention: Int) async throws(ModelError) -> [Int] {
        let versions = try await self.versions()
        guard versions.count > retention else { return [] }
        var kept = Set(versions.suffix(retention))
        for protected in [Keyspace.Models.active, Keyspace.Models.previous] {
            if let version = try await run(RedisCommand("GET", protected)).int { kept.insert(version) }
        }
        let doomed = versions.filter { !kept.contains($0) }
        for version in doomed {
            _ = try await run(RedisCommand("SREM", Keyspace.Models.versions, String(version)))
            _ = try await run(RedisCommand("DEL", Self.artifactKey(version)))
        }
        return doomed
    }

    public func versions() async throws(ModelError) -> [Int] {
        (try await run(RedisCommand("SMEMBERS", Keyspace.Models.versions)).array ?? []).compactMap(\.int).sorted()
    }

    /// Ensures a model is active: the replica that wins the lock trains one with `train` and
    /// activates it; the others wait (up to `timeout`) for it to appear.
    public func bootstrap(
        owner: String, timeout: Duration = .seconds(60), train: @Sendable () -> ModelArtifact
    ) async throws(ModelError) -> Int {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let active = try await activeVersion() { return active }
            let lock = try await run(RedisCommand("SET", Keyspace.Models.bootstrapLock, owner, "NX", "PX", "30000"))
            if lock.string == "OK" {
                let artifact = try await store(train())
                try await activate(artifact.version)
                try await releaseBootstrapLock(owner: owner)
                return artifact.version
            }
            do {
                try await Task.sleep(for: .milliseconds(100))
            } catch {
                throw .redis(.shutdown)
            }
        }
        throw .notFound(version: 0)
    }

    /// Deletes the bootstrap lock if `owner` still holds it; true when it did.
    @discardableResult
    func releaseBootstrapLock(owner: String) async throws(ModelError) -> Bool {
        try await client.evaluate(Self.lockRelease, keys: [Keyspace.Models.bootstrapLock], arguments: [owner], failing: ModelError.self).int == 1
    }

    static let lockRelease = RedisScript(name: "lock_release", source: PackageResources.lock_release_lua)

    private func run(_ command: RedisCommand) async throws(ModelError) -> RedisReply {
        try await client.send(command, failing: ModelError.self)
    }

    static let encoder = JSONEncoder.sluice
    static let decoder = JSONDecoder.sluice
}

public enum ModelError: Error, Sendable, Equatable, CustomStringConvertible {
    case notFound(version: Int)
    /// The stored bytes do not match their HMAC: altered in Redis, or signed with another key.
    case tampered(version: Int)
    /// Signed, but not a usable model.
    case malformed(version: Int)
    case redis(RedisError)

    public var description: String {
        switch self {
        case .notFound(let version): "model version \(version) does not exist"
        case .tampered(let version): "model version \(version) failed signature verification and was refused"
        case .malformed(let version): "model version \(version) is not a usable model"
        case .redis(let error): "model registry unavailable: \(error)"
        }
    }
}

extension ModelError: RedisBackedError {
    public var redisCause: RedisError? {
        if case .redis(let error) = self { return error }
        return nil
    }
}
