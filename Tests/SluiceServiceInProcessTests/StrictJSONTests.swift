@testable import SluiceService
import Testing

/// The strict parser on its own, in process: no server needed.
@Suite("Strict JSON parser")
struct StrictJSONTests {
    static func parse(_ text: String) throws(StrictJSON.Failure) -> JSONValue { try StrictJSON.parse(Array(text.utf8)) }

    @Test func surrogatePairsAreOneScalar() throws {
        #expect(try Self.parse(#"{"name":"\uD83D\uDE00 \u00e9"}"#) == .object(["name": .string("😀 é")]))
    }

    @Test(arguments: [#""\uD83D""#, #""\uD83Dx""#, #""\uDE00""#, #""\uD83D\u0041""#, #""\u+1F6""#, #""\u-001""#, #""\u12""#, #""\u12G4""#])
    func badUnicodeEscapesAreMalformed(_ text: String) {
        #expect(throws: StrictJSON.Failure.self) { try Self.parse(text) }
    }

    @Test func duplicatedKeysAndByteOrderMarksAreRefused() {
        #expect(throws: StrictJSON.Failure.duplicateKey(pointer: "/a")) { try Self.parse(#"{"a":1,"a":2}"#) }
        #expect(throws: StrictJSON.Failure.self) { try StrictJSON.parse([0xEF, 0xBB, 0xBF] + Array("{}".utf8)) }
    }

    /// The fast path for short decimals must give exactly what `Double(_:)` gives, sign of zero
    /// included, and leave everything else to it.
    @Test func shortDecimalsParseExactlyAsDoubleDoes() throws {
        var generator = SystemRandomNumberGenerator()
        var texts = ["0", "-0", "-0.0", "5.1", "0.1", "0.3", "-2.675", "123456789012345", "999999999999999", "0.000000000000009", "1.7976931348623157"]
        for _ in 0..<20_000 {
            let digits = Int.random(in: 1...15, using: &generator)
            var text = String(Int64.random(in: 1...999_999_999_999_999, using: &generator)).prefix(digits)
            let point = Int.random(in: 1...text.count, using: &generator)
            if point < text.count { text.insert(".", at: text.index(text.startIndex, offsetBy: point)) }
            texts.append((Bool.random(using: &generator) ? "-" : "") + text)
        }
        for text in texts {
            let bytes = ArraySlice(Array(text.utf8))
            let expected = try #require(Double(text), "\(text)")
            let fast = StrictJSON.exactValue(bytes)
            if text.filter(\.isNumber).count <= 15 {
                #expect(fast?.bitPattern == expected.bitPattern, "\(text)")
            }
            guard case .number(let parsed) = try Self.parse(text) else { Issue.record("\(text) is not a number"); continue }
            #expect(parsed.bitPattern == expected.bitPattern, "\(text)")
        }
        #expect(StrictJSON.exactValue(ArraySlice(Array("1e5".utf8))) == nil)
        #expect(StrictJSON.exactValue(ArraySlice(Array("1234567890123456".utf8))) == nil)
    }
}
