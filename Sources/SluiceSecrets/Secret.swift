/// A secret value that never prints itself.
///
/// `description`, `debugDescription` and string interpolation all give `<redacted>`, so a secret
/// that slips into a log line or an error message leaks nothing. Read ``revealed`` only where the
/// value is actually used.
public struct Secret: Sendable, Equatable, CustomStringConvertible, CustomDebugStringConvertible {
    public let revealed: String

    public init(_ value: String) {
        self.revealed = value
    }

    /// A coarse guard against placeholders like `aaaa…` or `changeme…`: a random secret of 32+
    /// characters has far more than 12 distinct characters.
    public var looksRandom: Bool { Set(revealed.unicodeScalars).count >= 12 }

    public var description: String { "<redacted>" }
    public var debugDescription: String { "<redacted>" }
}
