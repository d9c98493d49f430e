import Foundation
import SluiceTestSupport
import Testing

@Suite("Key lifecycle and rate limits across replicas", .serialized)
struct KeyLifecycleTests {
    func predict(_ url: String, key: String) async throws -> HTTP.Response {
        try await HTTP.json("POST", url + "/v1/predict", key: key, Cluster.setosa)
    }

    @Test func createUseRotateRevokeAcrossTwoReplicas() async throws {
        let cluster = try await Cluster(replicas: 2)
        let (a, b) = (cluster.replicas[0].baseURL, cluster.replicas[1].baseURL)
        let (key, id) = try await cluster.createKey(scopes: ["predict"], on: 0)
        #expect(try await predict(b, key: key).status == 200)

        let listed = try await HTTP.send("GET", b + "/v1/keys/\(id)", headers: ["Authorization": "Bearer \(cluster.adminKey)"])
        #expect(listed.status == 200 && listed.json?["key"] == nil, "the full key is shown once, at creation")
        #expect(listed.json?["scopes"] as? [String] == ["predict"])

        // Rotation with a grace period: both secrets work, then only the new one.
        let rotated = try await HTTP.json("POST", a + "/v1/keys/\(id)/rotate", key: cluster.adminKey, #"{"grace_period": 1}"#)
        let newKey = try #require(rotated.json?["key"] as? String)
        #expect(newKey != key && newKey.hasPrefix("sk_\(id)_"))
        #expect(try await predict(b, key: key).status == 200)
        #expect(try await predict(b, key: newKey).status == 200)
        try await Task.sleep(for: .milliseconds(1600))
        #expect(try await predict(b, key: key).status == 401)
        #expect(try await predict(b, key: newKey).status == 200)

        // Revoked on replica A: replica B (which has the key cached) refuses it within 1 s.
        let deleted = try await HTTP.send("DELETE", a + "/v1/keys/\(id)", headers: ["Authorization": "Bearer \(cluster.adminKey)"])
        #expect(deleted.status == 204)
        let revokedAt = ContinuousClock.now
        var refusedAfter: Duration?
        while ContinuousClock.now - revokedAt < .seconds(3) {
            if try await predict(b, key: newKey).status == 401 {
                refusedAfter = ContinuousClock.now - revokedAt
                break
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        let elapsed = try #require(refusedAfter)
        #expect(elapsed < .seconds(1), "revocation took \(elapsed) to reach the second replica")
        #expect(try await HTTP.send("GET", a + "/v1/keys/\(id)", headers: ["Authorization": "Bearer \(cluster.adminKey)"]).status == 404)
    }

    @Test func limitsAreGlobalAndA429CarriesEverythingAClientNeeds() async throws {
        let cluster = try await Cluster(replicas: 2)
        // 2 per second with bursts of 3, shared by both replicas.
        let (key, id) = try await cluster.createKey(scopes: ["predict"], policies: #"[{"name":"default","rate":2,"period":1,"burst":3}]"#)
        var statuses: [Int] = []
        for i in 0..<4 { statuses.append(try await predict(cluster.replicas[i % 2].baseURL, key: key).status) }
        #expect(statuses == [200, 200, 200, 429])

        let denied = try await predict(cluster.replicas[1].baseURL, key: key)
        #expect(denied.status == 429)
        #expect(denied.header("Content-Type") == "application/problem+json")
        let retryAfter = try #require(Int(denied.header("Retry-After") ?? ""))
        #expect(retryAfter >= 1)
        // draft-ietf-httpapi-ratelimit-headers-10, with a partition key that is not the key's id.
        let policyField = try #require(denied.header("RateLimit-Policy"))
        #expect(policyField.wholeMatch(of: /"default";q=3;w=1;pk=:[A-Za-z0-9+\/]{12}:/) != nil, "\(policyField)")
        let partition = try #require(policyField.firstMatch(of: /pk=(:[^:]+:)/).map { String($0.1) })
        #expect(!partition.contains(id) && !partition.contains(key))
        #expect(denied.header("RateLimit")?.hasPrefix(#""default";r=0;t="#) == true)
        #expect(denied.header("RateLimit")?.hasSuffix(";pk=\(partition)") == true)
        let problem = try #require(denied.json)
        #expect(problem["type"] as? String == "https://iana.org/assignments/http-problem-types#quota-exceeded")
        #expect(problem["violated-policies"] as? [String] == ["default"])
        #expect(problem["policy"] as? String == "default" && problem["retry_after"] as? Int == retryAfter)

        // A polite client waits Retry-After and is served.
        try await Task.sleep(for: .seconds(retryAfter))
        let retried = try await predict(cluster.replicas[0].baseURL, key: key)
        #expect(retried.status == 200)
        #expect(retried.header("RateLimit")?.hasPrefix(#""default";r="#) == true)
    }

    @Test func batchesCostOneUnitPerInstanceAndQuotasCount() async throws {
        let cluster = try await Cluster()
        let (key, _) = try await cluster.createKey(
            scopes: ["predict"], policies: #"[{"name":"default","rate":100,"period":1,"burst":100}]"#, extra: #","quota_per_day":5"#)
        let instance = #"{"sepal_length":6.3,"sepal_width":3.3,"petal_length":6.0,"petal_width":2.5}"#
        let batch = try await HTTP.json("POST", cluster.url + "/v1/predict", key: key, #"{"instances":[\#(instance),\#(instance),\#(instance)]}"#)
        #expect(batch.status == 200)
        let predictions = try #require(batch.json?["predictions"] as? [[String: Any]])
        #expect(predictions.count == 3 && predictions.allSatisfy { $0["label"] as? String == "virginica" })
        #expect(batch.header("RateLimit")?.contains(#""daily";r=2"#) == true)
        let tooMany = try await HTTP.json("POST", cluster.url + "/v1/predict", key: key, #"{"instances":[\#(instance),\#(instance),\#(instance)]}"#)
        #expect(tooMany.status == 429 && tooMany.json?["policy"] as? String == "daily")
        #expect(try await predict(cluster.url, key: key).status == 200, "nothing was charged for the refused batch")
    }
}
