import Foundation
import SluiceAuth
import Testing

@Suite("API key format and hashing")
struct APIKeyTests {
    @Test func generatedKeysHaveTheFormatAndEnoughEntropy() throws {
        let key = APIKey.generate()
        let parts = key.revealed.split(separator: "_")
        #expect(parts.count == 3 && parts[0] == "sk")
        #expect(parts[1].count == 12 && APIKey.isValidID(String(parts[1])))
        #expect(parts[2].count == 64 && parts[2].allSatisfy { $0.isHexDigit })
        #expect(APIKey(key.revealed)?.id == key.id)
        // 1000 keys, no repeated id or secret.
        let many = (0..<1000).map { _ in APIKey.generate() }
        #expect(Set(many.map(\.revealed)).count == 1000 && Set(many.map(\.id)).count == 1000)
    }

    @Test(arguments: [
        "", "sk_", "sk_abc_0123456789abcdef0123456789abcdef", "pk_abcdefgh_0123456789abcdef0123456789abcdef",
        "sk_ABCDEFGH_0123456789abcdef0123456789abcdef", "sk_abcdefgh_0123456789abcdef0123456789abcde",
        "sk_abcdefgh_0123456789abcdef0123456789abcde!", "sk_abcdefgh-0123456789abcdef0123456789abcdef",
        "sk_abcdefghijklmnopqrstuvwxyz0123456_0123456789abcdef0123456789abcdef",
        "Bearer sk_abcdefgh_0123456789abcdef0123456789abcdef",
    ])
    func malformedKeysAreRefused(text: String) {
        #expect(APIKey(text) == nil)
    }

    @Test func acceptsTheDocumentedShape() throws {
        let key = try #require(APIKey("sk_abcdefgh_0123456789ABCDEFabcdef0123456789"))
        #expect(key.id == "abcdefgh")
        #expect("\(key)" == "sk_abcdefgh_…")
    }

    @Test func hashIsSHA256OfTheWholeKey() throws {
        let key = try #require(APIKey("sk_abcdefgh_0123456789abcdef0123456789abcdef"))
        // printf %s 'sk_abcdefgh_0123456789abcdef0123456789abcdef' | sha256sum
        #expect(key.hash.hex == "57f5a4f6cb07bf84366e4703663360fa22afd0062428204523f2e63ff58c74e0")
        #expect(key.hash.matches(key.hash))
        #expect(!key.hash.matches(APIKey.generate().hash))
        let decoded = try JSONDecoder().decode(KeyHash.self, from: JSONEncoder().encode(key.hash))
        #expect(decoded == key.hash)
    }
}
