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
            encoded.append(13)
            encoded.append(10)
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
        self.init(name, arguments, [], [])
    }

    /// `name`, then the arguments of each list in turn (`EVALSHA sha n keys… args…`): one buffer,
    /// no concatenated array of arguments.
    init(_ name: String, _ first: [String], _ second: [String], _ third: [String]) {
        func size(_ list: [String]) -> Int { list.reduce(0) { $0 + $1.utf8.count + 16 } }
        var encoded: [UInt8] = []
        encoded.reserveCapacity(name.utf8.count + 32 + size(first) + size(second) + size(third))
        Self.appendHeader(UInt8(ascii: "*"), 1 + first.count + second.count + third.count, to: &encoded)
        Self.appendArgument(name, to: &encoded)
        for argument in first { Self.appendArgument(argument, to: &encoded) }
        for argument in second { Self.appendArgument(argument, to: &encoded) }
        for argument in third { Self.appendArgument(argument, to: &encoded) }
        self.encoded = encoded
    }

    private static func appendArgument(_ argument: String, to encoded: inout [UInt8]) {
        appendHeader(UInt8(ascii: "$"), argument.utf8.count, to: &encoded)
        encoded.append(contentsOf: argument.utf8)
        encoded.append(13)
        encoded.append(10)
    }

    private static func appendHeader(_ marker: UInt8, _ count: Int, to buffer: inout [UInt8]) {
        buffer.append(marker)
        buffer.append(contentsOf: String(count).utf8)
        buffer.append(13)
        buffer.append(10)
    }
}
