import Crypto
import Foundation
import SluiceSecrets

/// HMAC-SHA256 over an artifact's exact bytes, with `SLUICE_MODEL_SIGNING_KEY`.
///
/// The signature covers the bytes as stored, not a re-encoding, so any change to them — one
/// weight, one space — fails verification. Verification is constant-time (swift-crypto).
public struct ArtifactSigner: Sendable {
    /// Shorter keys are refused at start-up: HMAC-SHA256 wants at least its output size.
    public static let minimumKeyBytes = 32
    private let keyBytes: [UInt8]

    public init?(key: [UInt8]) {
        guard key.count >= Self.minimumKeyBytes else { return nil }
        self.keyBytes = key
    }

    /// The signer from `SLUICE_MODEL_SIGNING_KEY` (or `SLUICE_MODEL_SIGNING_KEY_FILE`); a missing,
    /// short or placeholder-like key is refused with an error naming the variable, never the value.
    public init(secrets: SecretSource) throws(SecretError) {
        let name = "SLUICE_MODEL_SIGNING_KEY"
        let signing = try secrets.required(name)
        guard let signer = ArtifactSigner(key: Array(signing.revealed.utf8)) else {
            throw .invalid(name: name, reason: "must be at least \(Self.minimumKeyBytes) bytes")
        }
        guard signing.looksRandom else {
            throw .invalid(name: name, reason: "looks weak (too few distinct characters); use 32+ random bytes")
        }
        self = signer
    }

    /// Built per use: `SymmetricKey` is not `Sendable`, and signing is off every hot path.
    private var key: SymmetricKey { SymmetricKey(data: keyBytes) }

    public func signature(of bytes: [UInt8]) -> String {
        HMAC<SHA256>.authenticationCode(for: bytes, using: key).map { String(format: "%02x", $0) }.joined()
    }

    public func verify(_ bytes: [UInt8], signature: String) -> Bool {
        let hex = Array(signature.utf8)
        guard hex.count == 64 else { return false }
        var mac: [UInt8] = []
        for i in stride(from: 0, to: 64, by: 2) {
            guard let byte = UInt8(String(decoding: hex[i..<i + 2], as: UTF8.self), radix: 16) else { return false }
            mac.append(byte)
        }
        return HMAC<SHA256>.isValidAuthenticationCode(mac, authenticating: bytes, using: key)
    }
}
