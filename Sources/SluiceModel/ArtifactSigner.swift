import Crypto
import Foundation
import SluiceSecrets
import Synchronization

/// The model-signing keys: each with an id; the *active* one signs, every listed one verifies.
///
/// From `SLUICE_MODEL_SIGNING_KEYS` (or `_FILE`): entries `id:key` separated by whitespace or
/// newlines, the first one active — so a rotation is "put the new key first, keep the old one
/// listed until `sluice models resign` has run, then drop it". The single-key
/// `SLUICE_MODEL_SIGNING_KEY` is a ring of one key with the id `default`, and artifacts stored
/// before key ids existed (they carry none) are verified with the key whose id is `default`.
public struct SigningKeyring: Sendable, Equatable {
    /// The id of artifacts that carry none, and of the single-key variable's key.
    public static let legacyKeyID = "default"
    /// Shorter keys are refused: HMAC-SHA256 wants at least its output size.
    public static let minimumKeyBytes = 32

    public let activeKeyID: String
    fileprivate let keys: [String: [UInt8]]

    /// The listed ids, the active one first.
    public var keyIDs: [String] { [activeKeyID] + keys.keys.filter { $0 != activeKeyID }.sorted() }

    /// `nil` when a key is short, an id malformed or listed twice, or the list empty.
    public init?(_ entries: [(id: String, key: [UInt8])]) {
        guard let first = entries.first, Set(entries.map(\.id)).count == entries.count,
            entries.allSatisfy({ Self.isValidID($0.id) && $0.key.count >= Self.minimumKeyBytes })
        else { return nil }
        self.activeKeyID = first.id
        self.keys = Dictionary(uniqueKeysWithValues: entries.map { ($0.id, $0.key) })
    }

    /// The ring from `SLUICE_MODEL_SIGNING_KEYS` or `SLUICE_MODEL_SIGNING_KEY` (each also as
    /// `_FILE`); errors name the variable and the entry's position or id, never a key.
    public init(secrets: SecretSource) throws(SecretError) {
        let ring = "SLUICE_MODEL_SIGNING_KEYS"
        let single = "SLUICE_MODEL_SIGNING_KEY"
        switch (try secrets.optional("SLUICE_MODEL_SIGNING_KEYS"), try secrets.optional("SLUICE_MODEL_SIGNING_KEY")) {
        case (nil, let key?):
            self = try Self.parse([(Self.legacyKeyID, key.revealed)], variable: single)
        case (let list?, nil):
            var entries: [(String, String)] = []
            for (index, entry) in list.revealed.split(whereSeparator: \.isWhitespace).enumerated() {
                guard let colon = entry.firstIndex(of: ":") else {
                    throw .invalid(name: ring, reason: "entry \(index + 1) is not id:key")
                }
                entries.append((String(entry[..<colon]), String(entry[entry.index(after: colon)...])))
            }
            self = try Self.parse(entries, variable: ring)
        case (nil, nil): throw .missing(name: single)
        case (.some, .some): throw .invalid(name: ring, reason: "set it or \(single), not both")
        }
    }

    private static func parse(_ entries: [(id: String, key: String)], variable: String) throws(SecretError) -> SigningKeyring {
        var seen: Set<String> = []
        for entry in entries {
            let which = variable.hasSuffix("KEYS") ? "key \(entry.id)" : "it"
            guard isValidID(entry.id) else { throw .invalid(name: variable, reason: "a key id must be 1-64 of A-Z a-z 0-9 . _ -") }
            guard seen.insert(entry.id).inserted else { throw .invalid(name: variable, reason: "key id \(entry.id) is listed twice") }
            guard entry.key.utf8.count >= minimumKeyBytes else { throw .invalid(name: variable, reason: "\(which) must be at least \(minimumKeyBytes) bytes") }
            guard Secret(entry.key).looksRandom else {
                throw .invalid(name: variable, reason: "\(which) looks weak (too few distinct characters); use 32+ random bytes")
            }
        }
        guard let ring = SigningKeyring(entries.map { ($0.id, Array($0.key.utf8)) }) else { throw .empty(name: variable) }
        return ring
    }

    private static func isValidID(_ id: String) -> Bool {
        (1...64).contains(id.utf8.count)
            && id.utf8.allSatisfy { byte in
                switch byte {
                case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                    UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "-"): true
                default: false
                }
            }
    }
}

/// HMAC-SHA256 over an artifact's exact bytes, with the keys of a ``SigningKeyring``.
///
/// The signature covers the bytes as stored, not a re-encoding, so any change to them — one
/// weight, one space — fails verification. Verification is constant-time (swift-crypto). The ring
/// can be replaced while the process runs (``replace(with:)``): a rotated keys file takes effect
/// without a restart.
public final class ArtifactSigner: Sendable {
    private let ring: Mutex<SigningKeyring>

    public init(ring: SigningKeyring) {
        self.ring = Mutex(ring)
    }

    /// One key with the id `default`; `nil` when it is shorter than 32 bytes.
    public convenience init?(key: [UInt8]) {
        guard let ring = SigningKeyring([(SigningKeyring.legacyKeyID, key)]) else { return nil }
        self.init(ring: ring)
    }

    /// The signer from the environment (see ``SigningKeyring/init(secrets:)``).
    public convenience init(secrets: SecretSource) throws(SecretError) {
        self.init(ring: try SigningKeyring(secrets: secrets))
    }

    public var keyring: SigningKeyring { ring.withLock { $0 } }

    /// Signs from now on with `fresh`'s active key, and verifies with its keys only.
    public func replace(with fresh: SigningKeyring) {
        ring.withLock { $0 = fresh }
    }

    /// The signature of `bytes` by the active key, and that key's id.
    public func sign(_ bytes: [UInt8]) -> (keyID: String, signature: String) {
        let ring = keyring
        let key = SymmetricKey(data: ring.keys[ring.activeKeyID]!)
        let mac = HMAC<SHA256>.authenticationCode(for: bytes, using: key)
        return (ring.activeKeyID, mac.map { String(format: "%02x", $0) }.joined())
    }

    /// The active key's signature of `bytes`.
    public func signature(of bytes: [UInt8]) -> String { sign(bytes).signature }

    /// True when `signature` is the HMAC of `bytes` by the listed key `keyID` (`nil`: an artifact
    /// from before key ids, verified with the `default` key). An unlisted id never verifies.
    public func verify(_ bytes: [UInt8], signature: String, keyID: String? = nil) -> Bool {
        guard let secret = keyring.keys[keyID ?? SigningKeyring.legacyKeyID] else { return false }
        let hex = Array(signature.utf8)
        guard hex.count == 64 else { return false }
        var mac: [UInt8] = []
        for i in stride(from: 0, to: 64, by: 2) {
            guard let byte = UInt8(String(decoding: hex[i..<i + 2], as: UTF8.self), radix: 16) else { return false }
            mac.append(byte)
        }
        return HMAC<SHA256>.isValidAuthenticationCode(mac, authenticating: bytes, using: SymmetricKey(data: secret))
    }

    /// The keys file (`SLUICE_MODEL_SIGNING_KEYS_FILE` or `SLUICE_MODEL_SIGNING_KEY_FILE`), taken
    /// again when it changes; `nil` when the keys are given directly.
    public func reloadable(from source: SecretSource) -> ReloadableSecret? {
        let names = ["SLUICE_MODEL_SIGNING_KEYS", "SLUICE_MODEL_SIGNING_KEY"]
        guard let name = names.first(where: { source.file(of: $0) != nil }), let file = source.file(of: name) else { return nil }
        return ReloadableSecret(name: name, files: [file]) { [self] () throws(SecretReloadError) in
            do throws(SecretError) {
                replace(with: try SigningKeyring(secrets: source))
            } catch {
                throw SecretReloadError(error)
            }
        }
    }
}
