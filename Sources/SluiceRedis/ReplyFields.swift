/// Reads an array reply field by field, in order, naming what was expected when the shape is
/// wrong: the typed decoding every script's reply goes through instead of index arithmetic.
///
///     var fields = try ReplyFields(reply, of: "gcra")
///     let allowed = try fields.int()
public struct ReplyFields {
    private let elements: [RedisReply]
    private let reply: RedisReply
    private let source: String
    /// The index of the next field.
    public private(set) var position = 0

    /// The fields of an array `reply` of the script or command `source`.
    public init(_ reply: RedisReply, of source: String) throws(RedisError) {
        guard let elements = reply.array else { throw .unexpectedReply("\(source) answered \(reply)") }
        self.elements = elements
        self.reply = reply
        self.source = source
    }

    /// Fields not read yet.
    public var remaining: Int { elements.count - position }

    /// The next field as it is.
    public mutating func next() throws(RedisError) -> RedisReply {
        guard position < elements.count else { throw mismatch("more than \(elements.count) fields") }
        defer { position += 1 }
        return elements[position]
    }

    public mutating func int() throws(RedisError) -> Int {
        guard let value = try next().int else { throw mismatch("an integer at field \(position - 1)") }
        return value
    }

    public mutating func int64() throws(RedisError) -> Int64 { Int64(try int()) }

    public mutating func double() throws(RedisError) -> Double {
        guard let value = try next().double else { throw mismatch("a number at field \(position - 1)") }
        return value
    }

    public mutating func string() throws(RedisError) -> String {
        guard let value = try next().string else { throw mismatch("a string at field \(position - 1)") }
        return value
    }

    /// The next field as text, or `nil` for a null (a missing hash field).
    public mutating func optionalString() throws(RedisError) -> String? { try next().string }

    /// The next field as an integer, or `nil` for a null or a non-number.
    public mutating func optionalInt() throws(RedisError) -> Int? { try next().int }

    /// Fails unless exactly `count` fields are left (or, with `atLeast`, no fewer).
    public func expect(_ count: Int, atLeast: Bool = false) throws(RedisError) {
        guard atLeast ? remaining >= count : remaining == count else { throw mismatch("\(count) fields") }
    }

    /// The error for a reply whose shape is not what `expected` says.
    public func mismatch(_ expected: String) -> RedisError {
        .unexpectedReply("\(source) answered \(reply) (expected \(expected))")
    }
}

/// Reads a bulk-string reply of space-separated decimal integers field by field: the form a
/// script answers in when an array reply would cost Redis more than the script's own work
/// (`lua/gcra.lua`). Parses the bytes in place; names what was expected when the shape is wrong.
public struct ReplyIntegers {
    private let bytes: [UInt8]
    private let reply: RedisReply
    private let source: String
    private var index = 0
    /// The index of the next field.
    public private(set) var position = 0

    public init(_ reply: RedisReply, of source: String) throws(RedisError) {
        guard case .bulkString(let bytes) = reply else { throw .unexpectedReply("\(source) answered \(reply)") }
        self.bytes = bytes
        self.reply = reply
        self.source = source
    }

    /// The next field: an optional `-` and 1 to 18 digits.
    public mutating func next() throws(RedisError) -> Int64 {
        guard index < bytes.count else { throw mismatch("more than \(position) fields") }
        let negative = bytes[index] == UInt8(ascii: "-")
        if negative { index += 1 }
        var value: Int64 = 0, digits = 0
        while index < bytes.count, bytes[index] != UInt8(ascii: " ") {
            let digit = bytes[index] &- UInt8(ascii: "0")
            guard digit < 10, digits < 18 else { throw mismatch("a decimal integer at field \(position)") }
            value = value * 10 + Int64(digit)
            digits += 1
            index += 1
        }
        guard digits > 0 else { throw mismatch("a decimal integer at field \(position)") }
        if index < bytes.count { index += 1 }  // the separator
        position += 1
        return negative ? -value : value
    }

    /// Fails unless every field has been read.
    public func end() throws(RedisError) {
        guard index == bytes.count, bytes.last != UInt8(ascii: " ") else { throw mismatch("\(position) fields") }
    }

    /// The error for a reply whose shape is not what `expected` says.
    public func mismatch(_ expected: String) -> RedisError {
        .unexpectedReply("\(source) answered \(reply) (expected \(expected))")
    }
}
