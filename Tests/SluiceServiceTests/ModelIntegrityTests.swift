import Foundation
import SluiceRedis
import SluiceTestSupport
import Testing

@Suite("Model integrity over HTTP", .serialized)
struct ModelIntegrityTests {
    func train(_ cluster: Cluster, key: String, csv: String) async throws -> HTTP.Response {
        try await HTTP.send(
            "POST", cluster.url + "/v1/models", headers: ["Authorization": "Bearer \(key)", "Content-Type": "text/csv"], body: Data(csv.utf8))
    }

    func servedVersion(_ url: String, key: String) async throws -> Int? {
        try await HTTP.json("POST", url + "/v1/predict", key: key, Cluster.setosa).json?["model_version"] as? Int
    }

    @Test func poisonedDataIsStoredButNotActivated() async throws {
        let cluster = try await Cluster()
        let trainer = try await cluster.createKey(scopes: ["train"]).key
        let poisoned = try await train(cluster, key: trainer, csv: try Cluster.irisCSV(shuffledLabels: true))
        #expect(poisoned.status == 201)
        #expect(poisoned.json?["activated"] as? Bool == false)
        #expect((poisoned.json?["reason"] as? String)?.contains("not activated") == true)
        let version = try #require((poisoned.json?["model"] as? [String: Any])?["version"] as? Int)
        #expect(version == 2)
        let models = try await HTTP.send("GET", cluster.url + "/v1/models", headers: ["Authorization": "Bearer \(trainer)"])
        let listed = try #require(models.json?["models"] as? [[String: Any]])
        #expect(listed.first { $0["active"] as? Bool == true }?["version"] as? Int == 1)

        // Clean data passes the gate and goes live; an admin can still force the poisoned one.
        let clean = try await train(cluster, key: trainer, csv: try Cluster.irisCSV())
        #expect(clean.status == 201 && clean.json?["activated"] as? Bool == true)
        let forced = try await HTTP.send("POST", cluster.url + "/v1/models/\(version)/activate", headers: ["Authorization": "Bearer \(cluster.adminKey)"])
        #expect(forced.status == 200)
    }

    @Test func aTamperedArtifactIsRefusedAndThePreviousModelKeepsServing() async throws {
        let cluster = try await Cluster(replicas: 2)
        let trainer = try await cluster.createKey(scopes: ["train"]).key
        let predictor = try await cluster.createKey(scopes: ["predict"]).key
        let metricsKey = try await cluster.createKey(scopes: ["metrics"]).key
        let redis = cluster.redis.client()
        defer { redis.shutdown() }

        // Version 2 is trained and goes live on both replicas within a second.
        #expect(try await train(cluster, key: trainer, csv: try Cluster.irisCSV()).json?["activated"] as? Bool == true)
        let activatedAt = ContinuousClock.now
        while try await servedVersion(cluster.replicas[1].baseURL, key: predictor) != 2 {
            #expect(ContinuousClock.now - activatedAt < .seconds(1), "activation did not reach the second replica in 1 s")
            try await Task.sleep(for: .milliseconds(20))
        }

        // Someone with Redis access trains nothing but rewrites version 1 and points "active" at it.
        let stored = try #require(try await redis.send("HGET", "sluice:{models}:artifact:1", "artifact").string)
        _ = try await redis.send("HSET", "sluice:{models}:artifact:1", "artifact", stored.replacingOccurrences(of: "\"intercepts\":[", with: "\"intercepts\":[5"))
        _ = try await redis.send("SET", "sluice:{models}:active", "1")
        _ = try await redis.send("PUBLISH", "sluice:models:activated", "1")
        try await Task.sleep(for: .milliseconds(600))
        for replica in cluster.replicas {
            #expect(try await servedVersion(replica.baseURL, key: predictor) == 2, "the verified model keeps serving")
            let metrics = try await HTTP.send("GET", replica.baseURL + "/metrics", headers: ["Authorization": "Bearer \(metricsKey)"])
            #expect(metrics.text.contains("sluice_model_artifacts_refused_total 1"), "\(metrics.text.prefix(500))")
            #expect(replica.log.contains("refused model artifact"))
        }
        // An admin cannot activate it either.
        let activation = try await HTTP.send("POST", cluster.url + "/v1/models/1/activate", headers: ["Authorization": "Bearer \(cluster.adminKey)"])
        #expect(activation.status == 409)
        #expect((activation.json?["detail"] as? String)?.contains("signature") == true)
    }
}
