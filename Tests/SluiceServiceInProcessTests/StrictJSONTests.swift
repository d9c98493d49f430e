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
}
