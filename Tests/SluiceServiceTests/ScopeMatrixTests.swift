import Foundation
import SluiceRedis
import SluiceTestSupport
import Testing

/// Authentication and scopes against a real replica over HTTP: what depends on the peer address
/// and on the process. The endpoint × scope matrix itself runs in process
/// (InProcessEndpointScopeTests), on ``ScopedEndpoint``'s table.
@Suite("Authentication and scopes over HTTP", .serialized)
struct ScopeMatrixTests {
    @Test func noKeyOrAWrongKeyIs401UntilTheAddressIsThrottled() async throws {
        let cluster = try await Cluster()
        // Failed authentication is limited per client address: a burst of 10, then 429.
        var attempts = 0
        for endpoint in try ScopedEndpoint.all(victim: "abcdefgh") {
            let anonymous = try await HTTP.send(endpoint.method, cluster.url + endpoint.path, headers: ["Content-Type": endpoint.contentType])
            attempts += 1
            if attempts <= 9 {
                #expect(anonymous.status == 401, "\(endpoint)")
                #expect(anonymous.header("WWW-Authenticate") == #"Bearer realm="sluice""#)
                #expect(anonymous.json?["type"] as? String == "/problems/unauthorized")
                #expect(anonymous.header("RateLimit")?.hasPrefix(#""auth";r="#) == true, "charged to the address' auth policy")
            }
        }
        let wrong = try await HTTP.send("GET", cluster.url + "/v1/models", headers: ["X-API-Key": "sk_abcdefgh_\(String(repeating: "x", count: 40))"])
        #expect(wrong.status == 429, "a further failure from one address is throttled")
        #expect(Int(wrong.header("Retry-After") ?? "") ?? 0 >= 1)
        #expect(wrong.json?["type"] as? String == "https://iana.org/assignments/http-problem-types#quota-exceeded")
        // A valid key from the same address is not affected, and the probes need no key.
        let key = try await cluster.createKey(scopes: ["train"]).key
        #expect(try await HTTP.send("GET", cluster.url + "/v1/models", headers: ["Authorization": "Bearer \(key)"]).status == 200)
        #expect(try await HTTP.send("GET", cluster.url + "/healthz").status == 200)
        #expect(try await HTTP.send("GET", cluster.url + "/readyz").status == 200)
    }

    @Test func forwardedForIsBelievedOnlyFromTrustedProxies() async throws {
        func exhaust(_ url: String, as client: String?) async throws -> [Int] {
            var statuses: [Int] = []
            for _ in 0..<11 {
                var headers: [String: String] = [:]
                if let client { headers["X-Forwarded-For"] = client }
                statuses.append(try await HTTP.send("GET", url + "/v1/models", headers: headers).status)
            }
            return statuses
        }
        // Untrusted peer: X-Forwarded-For is ignored, so rotating it does not reset the budget.
        let untrusted = try await Cluster()
        var spoofed: [Int] = []
        for i in 0..<11 { spoofed += [try await HTTP.send("GET", untrusted.url + "/v1/models", headers: ["X-Forwarded-For": "203.0.113.\(i)"]).status] }
        #expect(spoofed.last == 429)
        // Behind a trusted proxy (127.0.0.1 here), each client address has its own budget.
        let proxied = try await Cluster(environment: ["SLUICE_TRUSTED_PROXIES": "127.0.0.1"])
        #expect(try await exhaust(proxied.url, as: "198.51.100.7").last == 429)
        #expect(try await exhaust(proxied.url, as: "198.51.100.8").first == 401)
        #expect(try await exhaust(proxied.url, as: "198.51.100.9, 127.0.0.1").first == 401)
    }

    @Test func aWrongKeyIsAnInvalidToken() async throws {
        let cluster = try await Cluster()
        let wrong = try await HTTP.send("GET", cluster.url + "/v1/models", headers: ["X-API-Key": "sk_abcdefgh_\(String(repeating: "x", count: 40))"])
        #expect(wrong.status == 401 && wrong.header("WWW-Authenticate")?.contains("invalid_token") == true)
    }

    @Test func aPredictKeyCanNeverChangeTheModel() async throws {
        let cluster = try await Cluster()
        let predict = try await cluster.createKey(scopes: ["predict"]).key
        let train = try await HTTP.send(
            "POST", cluster.url + "/v1/models", headers: ["Authorization": "Bearer \(predict)", "Content-Type": "text/csv"],
            body: Data(try Cluster.irisCSV().utf8))
        let activate = try await HTTP.send("POST", cluster.url + "/v1/models/1/activate", headers: ["Authorization": "Bearer \(predict)"])
        #expect(train.status == 403 && activate.status == 403)
        #expect(try await cluster.redis.client().send("SMEMBERS", "sluice:{models}:versions").array?.count == 1)
    }
}
