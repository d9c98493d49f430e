import Crypto
import SluiceCore
import SluiceSecrets

/// An API key, `sk_<id>_<secret>`.
///
/// The id (8–32 of `[a-z0-9]`) is public: it appears in logs, metrics and rate-limit keys. The
/// secret (≥ 32 of `[A-Za-z0-9]`; generated keys carry 64 hex digits, 256 bits from the system
/// CSPRNG) is never stored: only the SHA-256 of the whole key is. Printing a key shows its id only.
public struct APIKey: Sendable, CustomStringConvertible {
    public let id: String
    private let full: Secret

    /// Parses a presented key; `nil` when it does not have the key format.
    public init?(_ text: String) {
        let bytes = text.utf8
        guard bytes.count <= 128, bytes.starts(with: "sk_".utf8) else { return nil }
        let body = bytes.dropFirst(3)
        guard let separator = body.firstIndex(of: UInt8(ascii: "_")) else { return nil }
        let id = body[..<separator]
        let secret = body[body.index(after: separator)...]
        guard (8...32).contains(id.count), id.allSatisfy(Self.isIDByte),
            secret.count >= 32, secret.allSatisfy(Self.isSecretByte)
        else { return nil }
        self.id = String(decoding: id, as: UTF8.self)
        self.full = Secret(text)
    }

    /// A new key with a random id (unless given) and 256 random bits of secret.
    public static func generate(id: String? = nil) -> APIKey {
        var generator = SystemRandomNumberGenerator()  // getrandom(2): the kernel CSPRNG
        let alphabet = Array("abcdefghijklmnopqrstuvwxyz0123456789".utf8)
        let id = id ?? String(decoding: (0..<12).map { _ in alphabet.randomElement(using: &generator)! }, as: UTF8.self)
        let secret = (0..<4).map { _ in generator.next() as UInt64 }
            .map { String($0, radix: 16).leftPadded(to: 16) }
            .joined()
        return APIKey("sk_\(id)_\(secret)")!
    }

    /// The full key: shown to its owner once, at creation; used nowhere else.
    public var revealed: String { full.revealed }

    /// SHA-256 of the whole key, the only form that is stored.
    public var hash: KeyHash { KeyHash(digest: Array(digest)) }

    /// The SHA-256 itself, hashed from the key's UTF-8 in place: what every request compares.
    var digest: SHA256Digest {
        var text = full.revealed
        return text.withUTF8 { SHA256.hash(data: UnsafeRawBufferPointer($0)) }
    }

    public var description: String { "sk_\(id)_…" }

    static func isIDByte(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
    }

    private static func isSecretByte(_ byte: UInt8) -> Bool {
        isIDByte(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
    }

    /// True for a valid key id: 8–32 lowercase letters or digits.
    public static func isValidID(_ id: String) -> Bool {
        (8...32).contains(id.utf8.count) && id.utf8.allSatisfy(isIDByte)
    }
}

/// The SHA-256 of a full API key, stored hex-encoded.
public struct KeyHash: Sendable, Codable, Equatable {
    public let digest: [UInt8]

    public init(digest: [UInt8]) {
        self.digest = digest
    }

    /// ``matches(_:)`` against a digest as computed (no array of its bytes).
    func matches(_ other: SHA256Digest) -> Bool {
        other.withUnsafeBytes { bytes in
            guard digest.count == bytes.count else { return false }
            var difference: UInt8 = 0
            for (a, b) in zip(digest, bytes) { difference |= a ^ b }
            return difference == 0
        }
    }

    /// Compares in constant time: the time taken does not depend on where two digests differ.
    public func matches(_ other: KeyHash) -> Bool {
        guard digest.count == other.digest.count else { return false }
        var difference: UInt8 = 0
        for (a, b) in zip(digest, other.digest) { difference |= a ^ b }
        return difference == 0
    }

    public var hex: String { digest.map { String($0, radix: 16).leftPadded(to: 2) }.joined() }

    public init(from decoder: any Decoder) throws {
        let hex = try decoder.singleValueContainer().decode(String.self)
        let bytes = Array(hex.utf8)
        guard bytes.count == 64, let digest = KeyHash.bytes(fromHex: bytes) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "expected 64 hex digits"))
        }
        self.digest = digest
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(hex)
    }

    private static func bytes(fromHex hex: [UInt8]) -> [UInt8]? {
        func nibble(_ c: UInt8) -> UInt8? {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
            default: nil
            }
        }
        var out: [UInt8] = []
        for i in stride(from: 0, to: hex.count, by: 2) {
            guard let high = nibble(hex[i]), let low = nibble(hex[i + 1]) else { return nil }
            out.append(high << 4 | low)
        }
        return out
    }
}
