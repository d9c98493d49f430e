import Foundation
import SluiceTestSupport
import Testing

/// A `"mode": "shadow"` policy is tried on live traffic and counted, never enforced.
@Suite("Shadow policies", .serialized)
struct ShadowPolicyTests {
    @Test func aShadowPolicyCountsWhatItWouldRefuseAndTheEnforcedOnesDecideAlone() async throws {
        let cluster = try await Cluster()
        let enforced = #"{"name":"default","rate":1,"period":60,"burst":6}"#
        let shadowed = try await cluster.createKey(
            scopes: ["predict"], policies: "[\(enforced), {\"name\":\"tighter\",\"rate\":1,\"period\":60,\"burst\":2,\"mode\":\"shadow\"}]")
        let plain = try await cluster.createKey(scopes: ["predict"], policies: "[\(enforced)]")
        let monitor = try await cluster.createKey(scopes: ["metrics"])
        let shown = try await HTTP.json("GET", cluster.url + "/v1/keys/\(shadowed.id)", key: cluster.adminKey, "")
        let policies = shown.json?["policies"] as? [[String: Any]] ?? []
        #expect(policies.count == 2 && policies[1]["mode"] as? String == "shadow" && policies[0]["mode"] == nil, "\(policies)")

        // The same 8 requests on both keys: the same answers (6 admitted, then 429), and only the
        // enforced policy in the RateLimit headers.
        func statuses(_ key: String) async throws -> [Int] {
            var statuses: [Int] = []
            for _ in 0..<8 {
                let response = try await HTTP.json("POST", cluster.url + "/v1/predict", key: key, Cluster.setosa)
                statuses.append(response.status)
                #expect(response.header("RateLimit-Policy")?.contains("tighter") == false, "a shadow policy is not advertised")
            }
            return statuses
        }
        let withShadow = try await statuses(shadowed.key)
        let without = try await statuses(plain.key)
        #expect(withShadow == without && withShadow == Array(repeating: 200, count: 6) + [429, 429], "\(withShadow) vs \(without)")

        // The shadow policy (burst 2) would have refused 4 of the 6 served.
        let metrics = try await HTTP.send("GET", cluster.url + "/metrics", headers: ["Authorization": "Bearer \(monitor.key)"]).text
        #expect(metrics.contains(#"sluice_limiter_shadow_denials_total{policy="tighter"} 4"#), "\(metrics.split(separator: "\n").filter { $0.contains("shadow") })")
        #expect(cluster.replicas[0].log.contains("shadow policy would refuse"))

        // Only shadow policies and no quota: refused, a key must be limited.
        let unlimited = try await HTTP.json(
            "POST", cluster.url + "/v1/keys", key: cluster.adminKey,
            #"{"name":"x","scopes":["predict"],"policies":[{"name":"t","rate":1,"period":1,"mode":"shadow"}]}"#)
        #expect(unlimited.status == 422 && unlimited.text.contains("enforced"), "\(unlimited.text)")
    }
}
