/// One Redis command, binary-safe, already encoded in RESP.
///
/// Encoding happens in the caller's task, in parallel, so that the connection's event loop only copies
/// finished bytes into its output buffer.
public struct RedisCommand: Sendable, Hashable {
    /// The command in RESP: `*<argc>\r\n` then `$<len>\r\n<bytes>\r\n` per argument.
    public let encoded: [UInt8]

    public init(arguments: [[UInt8]]) {
        var encoded: [UInt8] = []
        encoded.reserveCapacity(arguments.reduce(16) { $0 + $1.count + 16 })
        Self.appendHeader(UInt8(ascii: "*"), arguments.count, to: &encoded)
        for argument in arguments {
            Self.appendHeader(UInt8(ascii: "$"), argument.count, to: &encoded)
            encoded.append(contentsOf: argument)
            encoded.append(contentsOf: [13, 10])
        }
        self.encoded = encoded
    }

    /// The command name, for logs and metrics (never the arguments: they may hold secrets).
    /// Decoded on demand from the second line of the encoding, `$<len>\r\n<name>`.
    public var name: String {
        var lines = encoded.split(separator: 10, maxSplits: 3, omittingEmptySubsequences: false)
        guard lines.count >= 3 else { return "" }
        lines[2] = lines[2].dropLast()  // the \r
        return String(decoding: lines[2], as: UTF8.self).uppercased()
    }

    /// `RedisCommand("SET", key, value)`.
    public init(_ name: String, _ arguments: String...) {
        self.init(name, arguments)
    }

    /// Encodes straight from the strings' UTF-8, without intermediate byte arrays (hot path).
    public init(_ name: String, _ arguments: [String]) {
        var encoded: [UInt8] = []
        encoded.reserveCapacity(arguments.reduce(name.utf8.count + 32) { $0 + $1.utf8.count + 16 })
        Self.appendHeader(UInt8(ascii: "*"), arguments.count + 1, to: &encoded)
        for argument in CollectionOfOne(name) + arguments {
            Self.appendHeader(UInt8(ascii: "$"), argument.utf8.count, to: &encoded)
            encoded.append(contentsOf: argument.utf8)
            encoded.append(contentsOf: [13, 10])
        }
        self.encoded = encoded
    }

    private static func appendHeader(_ marker: UInt8, _ count: Int, to buffer: inout [UInt8]) {
        buffer.append(marker)
        buffer.append(contentsOf: String(count).utf8)
        buffer.append(contentsOf: [13, 10])
    }
}
