/// A RESP2 reply, as hiredis 0.14 parses it.
public enum RedisReply: Sendable, Equatable {
    /// A bulk string; binary-safe.
    case bulkString([UInt8])
    /// A status reply such as `OK`.
    case simpleString(String)
    case integer(Int64)
    case array([RedisReply])
    /// The nil bulk string or nil array.
    case null
    /// An error reply nested in an array (top-level error replies are thrown as ``RedisError/server(_:)``).
    case error(String)

    /// The reply as UTF-8 text, for bulk and simple strings.
    public var string: String? {
        switch self {
        case .bulkString(let bytes): String(decoding: bytes, as: UTF8.self)
        case .simpleString(let text): text
        default: nil
        }
    }

    /// The reply as an integer, for integer replies and bulk strings holding a decimal integer.
    public var int: Int? {
        switch self {
        case .integer(let value): Int(value)
        case .bulkString, .simpleString: string.flatMap { Int($0) }
        default: nil
        }
    }

    /// The reply as a floating-point number, for integers and strings holding a decimal number.
    public var double: Double? {
        switch self {
        case .integer(let value): Double(value)
        case .bulkString, .simpleString: string.flatMap { Double($0) }
        default: nil
        }
    }

    /// The elements of an array reply.
    public var array: [RedisReply]? {
        if case .array(let elements) = self { elements } else { nil }
    }
}
