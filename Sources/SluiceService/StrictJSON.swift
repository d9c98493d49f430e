/// A JSON value from ``StrictJSON``. Not `indirect`: the recursion goes through the array and
/// dictionary storage already, and boxing every scalar would cost an allocation each.
enum JSONValue: Equatable, Sendable {
    case object([String: JSONValue])
    case array([JSONValue])
    case string(String)
    case number(Double)
    case bool(Bool)
    case null
}

/// A strict RFC 8259 parser for request bodies.
///
/// Stricter than Foundation's on purpose: a duplicated object key is an error (which of two
/// `"petal_width"` values did the client mean?), and so is nesting deeper than `maxDepth`, so a
/// hostile body of ten thousand `[` cannot exhaust the stack.
struct StrictJSON {
    enum Failure: Error, Equatable {
        /// Not JSON at all (400).
        case malformed(offset: Int, reason: String)
        /// JSON, but nested too deeply (422).
        case tooDeep(pointer: String)
        /// JSON, but with a key given twice (422).
        case duplicateKey(pointer: String)
    }

    static func parse(_ bytes: [UInt8], maxDepth: Int = 8) throws(Failure) -> JSONValue {
        var parser = StrictJSON(bytes: bytes, maxDepth: maxDepth)
        parser.skipWhitespace()
        let value = try parser.value(depth: 0, pointer: { "" })
        parser.skipWhitespace()
        guard parser.index == bytes.count else { throw .malformed(offset: parser.index, reason: "unexpected data after the value") }
        return value
    }

    /// The usual shape of a body read without building its ``JSONValue``:
    /// `{"<key>":{"<name>":<number>, …}}`, whitespace wherever JSON allows it. Hands each member
    /// to `member` in order and is true when `bytes` hold exactly that shape and `member` took
    /// every one. False, with nothing thrown, for anything else (another shape, an escape in a
    /// name, a malformed body, a member refused): the caller then parses the body in full
    /// (``parse(_:maxDepth:)``), which finds and names what is wrong. Numbers are read by the
    /// same code as there, so each value is the one the full parse gives.
    static func numberMembers(_ bytes: [UInt8], under key: String, _ member: (_ name: ArraySlice<UInt8>, _ value: Double) -> Bool) -> Bool {
        var parser = StrictJSON(bytes: bytes, maxDepth: 2)
        return parser.numberMembers(under: key, member)
    }

    private mutating func numberMembers(under key: String, _ member: (ArraySlice<UInt8>, Double) -> Bool) -> Bool {
        skipWhitespace()
        guard take(UInt8(ascii: "{")), let outer = plainString(), outer.elementsEqual(key.utf8), take(UInt8(ascii: ":")),
            take(UInt8(ascii: "{"))
        else { return false }
        repeat {
            guard let name = plainString(), take(UInt8(ascii: ":")) else { return false }
            skipWhitespace()
            guard let value = try? number(), member(name, value) else { return false }
        } while take(UInt8(ascii: ","))
        guard take(UInt8(ascii: "}")), take(UInt8(ascii: "}")) else { return false }
        return index == bytes.count
    }

    /// Skips whitespace, then takes `byte` and the whitespace after it, if `byte` is next.
    private mutating func take(_ byte: UInt8) -> Bool {
        skipWhitespace()
        guard peek(byte) else { return false }
        index += 1
        skipWhitespace()
        return true
    }

    /// A string without escapes or control characters, as its bytes (not validated: only
    /// compared with known names), after whitespace; nil for any other next value.
    private mutating func plainString() -> ArraySlice<UInt8>? {
        skipWhitespace()
        guard peek(UInt8(ascii: "\"")) else { return nil }
        var end = index + 1
        while end < bytes.count, bytes[end] != UInt8(ascii: "\""), bytes[end] != UInt8(ascii: "\\"), bytes[end] >= 0x20 { end += 1 }
        guard end < bytes.count, bytes[end] == UInt8(ascii: "\"") else { return nil }
        defer { index = end + 1 }
        return bytes[(index + 1)..<end]
    }

    private let bytes: [UInt8]
    private let maxDepth: Int
    private var index = 0

    private init(bytes: [UInt8], maxDepth: Int) {
        self.bytes = bytes
        self.maxDepth = maxDepth
    }

    /// `pointer` builds the JSON Pointer of this value; it is only called to report an error.
    private mutating func value(depth: Int, pointer: () -> String) throws(Failure) -> JSONValue {
        guard index < bytes.count else { throw .malformed(offset: index, reason: "unexpected end of input") }
        switch bytes[index] {
        case UInt8(ascii: "{"):
            guard depth < maxDepth else { throw .tooDeep(pointer: pointer()) }
            return try object(depth: depth, pointer: pointer)
        case UInt8(ascii: "["):
            guard depth < maxDepth else { throw .tooDeep(pointer: pointer()) }
            return try array(depth: depth, pointer: pointer)
        case UInt8(ascii: "\""):
            return .string(try string())
        case UInt8(ascii: "t"):
            try literal("true")
            return .bool(true)
        case UInt8(ascii: "f"):
            try literal("false")
            return .bool(false)
        case UInt8(ascii: "n"):
            try literal("null")
            return .null
        default:
            return .number(try number())
        }
    }

    private mutating func object(depth: Int, pointer: () -> String) throws(Failure) -> JSONValue {
        index += 1
        var members: [String: JSONValue] = [:]
        // One allocation for the objects requests hold (a prediction's four features).
        members.reserveCapacity(8)
        skipWhitespace()
        if peek(UInt8(ascii: "}")) {
            index += 1
            return .object(members)
        }
        while true {
            skipWhitespace()
            guard peek(UInt8(ascii: "\"")) else { throw .malformed(offset: index, reason: "expected a string key") }
            let key = try string()
            guard members[key] == nil else { throw .duplicateKey(pointer: pointer() + "/" + Self.escapePointer(key)) }
            skipWhitespace()
            try expect(UInt8(ascii: ":"))
            skipWhitespace()
            members[key] = try value(depth: depth + 1, pointer: { pointer() + "/" + Self.escapePointer(key) })
            skipWhitespace()
            if peek(UInt8(ascii: ",")) {
                index += 1
                continue
            }
            try expect(UInt8(ascii: "}"))
            return .object(members)
        }
    }

    private mutating func array(depth: Int, pointer: () -> String) throws(Failure) -> JSONValue {
        index += 1
        var elements: [JSONValue] = []
        skipWhitespace()
        if peek(UInt8(ascii: "]")) {
            index += 1
            return .array(elements)
        }
        while true {
            skipWhitespace()
            let position = elements.count
            elements.append(try value(depth: depth + 1, pointer: { pointer() + "/\(position)" }))
            skipWhitespace()
            if peek(UInt8(ascii: ",")) {
                index += 1
                continue
            }
            try expect(UInt8(ascii: "]"))
            return .array(elements)
        }
    }

    /// The four hex digits of a `\u` escape (exactly four, no sign: `UInt32(_:radix:)` alone
    /// would take `+1F6`).
    private mutating func hexQuad() throws(Failure) -> UInt32 {
        guard index + 4 <= bytes.count else { throw .malformed(offset: index, reason: "invalid \\u escape") }
        var code: UInt32 = 0
        for byte in bytes[index..<index + 4] {
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: throw .malformed(offset: index, reason: "invalid \\u escape")
            }
            code = code << 4 | UInt32(digit)
        }
        index += 4
        return code
    }

    private mutating func string() throws(Failure) -> String {
        index += 1
        // Most strings (keys, feature names) hold no escape and no control character: made from
        // their bytes at once, without an array of their own.
        var end = index
        while end < bytes.count, bytes[end] != UInt8(ascii: "\""), bytes[end] != UInt8(ascii: "\\"), bytes[end] >= 0x20 { end += 1 }
        if end < bytes.count, bytes[end] == UInt8(ascii: "\"") {
            guard let text = String(validating: bytes[index..<end], as: UTF8.self) else {
                throw .malformed(offset: end + 1, reason: "invalid UTF-8 in a string")
            }
            index = end + 1
            return text
        }
        var scalars: [UInt8] = []
        while index < bytes.count {
            let byte = bytes[index]
            index += 1
            switch byte {
            case UInt8(ascii: "\""):
                guard let text = String(validating: scalars, as: UTF8.self) else {
                    throw .malformed(offset: index, reason: "invalid UTF-8 in a string")
                }
                return text
            case UInt8(ascii: "\\"):
                guard index < bytes.count else { break }
                let escape = bytes[index]
                index += 1
                switch escape {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): scalars.append(escape)
                case UInt8(ascii: "b"): scalars.append(8)
                case UInt8(ascii: "f"): scalars.append(12)
                case UInt8(ascii: "n"): scalars.append(10)
                case UInt8(ascii: "r"): scalars.append(13)
                case UInt8(ascii: "t"): scalars.append(9)
                case UInt8(ascii: "u"):
                    var code = try hexQuad()
                    // A high surrogate must be followed by `\uDC00`–`\uDFFF`: together one scalar.
                    if (0xD800...0xDBFF).contains(code) {
                        guard index + 1 < bytes.count, bytes[index] == UInt8(ascii: "\\"), bytes[index + 1] == UInt8(ascii: "u") else {
                            throw .malformed(offset: index, reason: "unpaired surrogate in a \\u escape")
                        }
                        index += 2
                        let low = try hexQuad()
                        guard (0xDC00...0xDFFF).contains(low) else { throw .malformed(offset: index, reason: "unpaired surrogate in a \\u escape") }
                        code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                    }
                    guard let scalar = Unicode.Scalar(code) else { throw .malformed(offset: index, reason: "unpaired surrogate in a \\u escape") }
                    scalars.append(contentsOf: Array(String(Character(scalar)).utf8))
                default:
                    throw .malformed(offset: index, reason: "invalid escape")
                }
            case 0..<0x20:
                throw .malformed(offset: index, reason: "control character in a string")
            default:
                scalars.append(byte)
            }
        }
        throw .malformed(offset: index, reason: "unterminated string")
    }

    private mutating func number() throws(Failure) -> Double {
        let start = index
        if peek(UInt8(ascii: "-")) { index += 1 }
        let digitsStart = index
        while index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) { index += 1 }
        let integerDigits = index - digitsStart
        guard integerDigits > 0, !(integerDigits > 1 && bytes[digitsStart] == UInt8(ascii: "0")) else {
            throw .malformed(offset: start, reason: "invalid value")
        }
        if peek(UInt8(ascii: ".")) {
            index += 1
            let fractionStart = index
            while index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) { index += 1 }
            guard index > fractionStart else { throw .malformed(offset: index, reason: "invalid number") }
        }
        if peek(UInt8(ascii: "e")) || peek(UInt8(ascii: "E")) {
            index += 1
            if peek(UInt8(ascii: "+")) || peek(UInt8(ascii: "-")) { index += 1 }
            let exponentStart = index
            while index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) { index += 1 }
            guard index > exponentStart else { throw .malformed(offset: index, reason: "invalid number") }
        }
        if let exact = Self.exactValue(bytes[start..<index]) { return exact }
        // 1e400 parses to infinity: it is JSON, and the caller refuses it as not finite.
        guard let value = Double(String(decoding: bytes[start..<index], as: UTF8.self)) else {
            throw .malformed(offset: start, reason: "invalid number")
        }
        return value
    }

    /// The value of a number without an exponent whose digits fit in 15 (`5.1`, `-0.25`, `140`),
    /// computed without a string: its digits as an integer, exact in a `Double` below 2^53, divided
    /// by a power of ten, exact up to 10^22. One correctly rounded division of two exact values
    /// is the correctly rounded result (Clinger's fast path), so it equals what `Double(_:)` gives.
    /// `nil` for anything else, which takes the general path.
    static func exactValue(_ text: ArraySlice<UInt8>) -> Double? {
        var digits: Int64 = 0
        var count = 0
        var fractionDigits = 0
        var inFraction = false
        var negative = false
        for byte in text {
            switch byte {
            case UInt8(ascii: "-"): negative = true
            case UInt8(ascii: "."): inFraction = true
            case UInt8(ascii: "0")...UInt8(ascii: "9"):
                count += 1
                guard count <= 15 else { return nil }
                digits = digits * 10 + Int64(byte - UInt8(ascii: "0"))
                if inFraction { fractionDigits += 1 }
            default: return nil  // an exponent
            }
        }
        let magnitude = Double(digits) / Self.powersOfTen[fractionDigits]
        // `-0` stays negative zero, as `Double("-0")` gives.
        return negative ? -magnitude : magnitude
    }

    /// 10^0 … 10^15, each exact in a `Double`.
    private static let powersOfTen: [Double] = (0...15).map { exponent in (0..<exponent).reduce(1.0) { value, _ in value * 10 } }

    private mutating func literal(_ word: String) throws(Failure) {
        let expected = Array(word.utf8)
        guard index + expected.count <= bytes.count, Array(bytes[index..<index + expected.count]) == expected else {
            throw .malformed(offset: index, reason: "invalid value")
        }
        index += expected.count
    }

    private mutating func expect(_ byte: UInt8) throws(Failure) {
        guard peek(byte) else { throw .malformed(offset: index, reason: "expected '\(Character(Unicode.Scalar(byte)))'") }
        index += 1
    }

    private func peek(_ byte: UInt8) -> Bool { index < bytes.count && bytes[index] == byte }

    private mutating func skipWhitespace() {
        while index < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[index]) { index += 1 }
    }

    /// RFC 6901: `~` → `~0`, `/` → `~1`.
    static func escapePointer(_ key: String) -> String {
        guard key.utf8.contains(where: { $0 == UInt8(ascii: "~") || $0 == UInt8(ascii: "/") }) else { return key }
        return key.replacing("~", with: "~0").replacing("/", with: "~1")
    }
}
