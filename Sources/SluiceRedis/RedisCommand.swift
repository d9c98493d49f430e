/// One Redis command, binary-safe, already encoded in RESP, with its keys declared when it is
/// built (where in the encoding they are), so that a Redis Cluster router finds their slot
/// without parsing the command again.
///
/// Encoding happens in the caller's task, in parallel, so that the connection's event loop only copies
/// finished bytes into its output buffer.
public struct RedisCommand: Sendable, Hashable {
    /// The command in RESP: `*<argc>\r\n` then `$<len>\r\n<bytes>\r\n` per argument.
    public let encoded: [UInt8]
    /// The byte offset in ``encoded`` of the first key's `$<len>` line, and how many keys follow
    /// it (keys are always consecutive arguments: see ``KeyRule``).
    let keyOffset: Int
    let keyCount: Int

    public init(arguments: [[UInt8]]) {
        var encoded: [UInt8] = []
        encoded.reserveCapacity(arguments.reduce(16) { $0 + $1.count + 16 })
        Self.appendHeader(UInt8(ascii: "*"), arguments.count, to: &encoded)
        let keys = KeyRule(name: arguments.first.map { String(decoding: $0, as: UTF8.self) } ?? "")
            .keys(argumentCount: arguments.count, numberOfKeys: arguments.count > 2 ? Int(String(decoding: arguments[2], as: UTF8.self)) : nil)
        var keyOffset = 0
        for (index, argument) in arguments.enumerated() {
            if !keys.isEmpty, index == keys.lowerBound { keyOffset = encoded.count }
            Self.appendHeader(UInt8(ascii: "$"), argument.count, to: &encoded)
            encoded.append(contentsOf: argument)
            encoded.append(13)
            encoded.append(10)
        }
        self.encoded = encoded
        self.keyOffset = keyOffset
        self.keyCount = keys.count
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
        let count = 1 + first.count + second.count + third.count
        // `numkeys` of EVAL/EVALSHA/FCALL is the second argument after the name.
        func argument(_ index: Int) -> String? {
            let position = index - 1
            if position < first.count { return first[position] }
            if position - first.count < second.count { return second[position - first.count] }
            let rest = position - first.count - second.count
            return rest < third.count ? third[rest] : nil
        }
        let keys = KeyRule(name: name).keys(argumentCount: count, numberOfKeys: count > 2 ? argument(2).flatMap { Int($0) } : nil)
        var encoded: [UInt8] = []
        encoded.reserveCapacity(name.utf8.count + 32 + size(first) + size(second) + size(third))
        Self.appendHeader(UInt8(ascii: "*"), count, to: &encoded)
        Self.appendArgument(name, to: &encoded)
        var index = 1
        var keyOffset = 0
        func append(_ list: [String]) {
            for argument in list {
                if !keys.isEmpty, index == keys.lowerBound { keyOffset = encoded.count }
                Self.appendArgument(argument, to: &encoded)
                index += 1
            }
        }
        append(first)
        append(second)
        append(third)
        self.encoded = encoded
        self.keyOffset = keyOffset
        self.keyCount = keys.count
    }

    init(encoded: [UInt8], keyOffset: Int, keyCount: Int) {
        self.encoded = encoded
        self.keyOffset = keyOffset
        self.keyCount = keyCount
    }

    static func appendArgument(_ argument: String, to encoded: inout [UInt8]) {
        appendHeader(UInt8(ascii: "$"), argument.utf8.count, to: &encoded)
        encoded.append(contentsOf: argument.utf8)
        encoded.append(13)
        encoded.append(10)
    }

    static func appendHeader(_ marker: UInt8, _ count: Int, to buffer: inout [UInt8]) {
        buffer.append(marker)
        buffer.append(contentsOf: String(count).utf8)
        buffer.append(13)
        buffer.append(10)
    }
}
