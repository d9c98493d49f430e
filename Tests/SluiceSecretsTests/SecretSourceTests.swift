import Foundation
import SluiceSecrets
import Testing

@Suite("Secrets from environment variables and *_FILE files")
struct SecretSourceTests {
    func file(_ contents: String) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("secret-\(UUID().uuidString)").path
        try contents.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test func directValue() throws {
        let source = SecretSource(environment: ["REDIS_PASSWORD": "  pw  "])
        #expect(try source.optional("REDIS_PASSWORD")?.revealed == "pw")
    }

    @Test func fileValueIsTrimmed() throws {
        let path = try file("from-file\n")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let source = SecretSource(environment: ["REDIS_PASSWORD_FILE": path])
        #expect(try source.required("REDIS_PASSWORD").revealed == "from-file")
    }

    @Test func refusals() throws {
        let path = try file("x")
        defer { try? FileManager.default.removeItem(atPath: path) }
        #expect(throws: SecretError.ambiguous(name: "A")) {
            try SecretSource(environment: ["A": "x", "A_FILE": path]).optional("A")
        }
        #expect(throws: SecretError.missing(name: "A")) { try SecretSource(environment: [:]).required("A") }
        #expect(try SecretSource(environment: [:]).optional("A") == nil)
        #expect(throws: SecretError.empty(name: "A")) { try SecretSource(environment: ["A": " \n"]).optional("A") }
        #expect(throws: SecretError.unreadableFile(name: "A_FILE", path: "/nonexistent/secret")) {
            try SecretSource(environment: ["A_FILE": "/nonexistent/secret"]).optional("A")
        }
    }

    @Test func secretsNeverPrintThemselves() {
        let secret = Secret("sk_live_very_secret")
        #expect("\(secret)" == "<redacted>")
        #expect(String(reflecting: secret) == "<redacted>")
        #expect(!SecretError.invalid(name: "X", reason: "too short").description.contains("sk_live"))
    }
}
