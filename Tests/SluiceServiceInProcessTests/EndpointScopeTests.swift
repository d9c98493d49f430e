import Foundation
import SluiceTestSupport
import Testing

/// Every endpoint × scope pair, in process: a key reaches an endpoint exactly when it holds one of
/// the endpoint's scopes. (Over HTTP: ScopeMatrixTests, for what depends on the peer address.)
@Suite("In-process: endpoint × scope matrix", .serialized)
struct InProcessEndpointScopeTests {
    @Test func everyEndpointEnforcesItsScopes() async throws {
        try await InProcessReplica.run { replica in
            var keys: [String: String] = [:]
            for scope in ["predict", "train", "admin", "metrics"] {
                keys[scope] = try await replica.createKey(scopes: [scope]).key
            }
            var checked = 0
            for scope in ["predict", "train", "admin", "metrics"] {
                // A fresh victim per scope, so that DELETE and rotate find something to act on.
                let victim = try await replica.createKey(scopes: ["predict"]).id
                for endpoint in try ScopedEndpoint.all(victim: victim) {
                    let response = try await replica.send(
                        endpoint.method, endpoint.path,
                        headers: ["Authorization": "Bearer \(keys[scope]!)", "Content-Type": endpoint.contentType],
                        body: endpoint.body.isEmpty ? nil : Data(endpoint.body.utf8))
                    if endpoint.allowed.contains(scope) {
                        #expect(endpoint.allowedStatuses.contains(response.status), "\(scope) → \(endpoint): \(response.status) \(response.text)")
                    } else {
                        #expect(response.status == 403, "\(scope) → \(endpoint): \(response.status)")
                        #expect(response.header("Content-Type") == "application/problem+json")
                        #expect(response.header("WWW-Authenticate")?.contains("insufficient_scope") == true)
                        // RFC 6750: the scopes that would do, space-separated.
                        let expected = "scope=\"\(endpoint.allowed.sorted().joined(separator: " "))\""
                        #expect(response.header("WWW-Authenticate")?.contains(expected) == true, "\(response.header("WWW-Authenticate") ?? "")")
                    }
                    checked += 1
                }
            }
            #expect(checked == 48)
        }
    }
}
