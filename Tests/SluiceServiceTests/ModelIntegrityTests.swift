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

    /// A `train` key relabels a few more versicolor rows as virginica on each of 27 uploads, the
    /// probe that once walked the active model from 1.00 to 0.70 reference accuracy.
    @Test func aTrainKeyCannotRatchetThePoisonIn() async throws {
        let cluster = try await Cluster(replicaArguments: ["--training-rate", "3600", "--training-burst", "100", "--model-retention", "5"])
        let trainer = try await cluster.createKey(scopes: ["train"]).key
        let predictor = try await cluster.createKey(scopes: ["predict"]).key
        func activeAccuracy() async throws -> Double {
            let models = try await HTTP.send("GET", cluster.url + "/v1/models", headers: ["Authorization": "Bearer \(trainer)"])
            let active = try #require((models.json?["models"] as? [[String: Any]])?.first { $0["active"] as? Bool == true })
            return try #require((active["metrics"] as? [String: Any])?["reference_accuracy"] as? Double)
        }
        let bootstrap = try await activeAccuracy()
        let lines = try Cluster.irisCSV().split(separator: "\n").map(String.init)
        var activations = 0
        for step in 1...27 {
            var relabelled = 0
            let poisoned = lines.map { line -> String in
                guard line.hasSuffix(",versicolor"), relabelled < min(step * 2, 45) else { return line }
                relabelled += 1
                return line.replacingOccurrences(of: ",versicolor", with: ",virginica")
            }
            let response = try await train(cluster, key: trainer, csv: poisoned.joined(separator: "\n"))
            #expect(response.status == 201, "\(response.text)")
            if response.json?["activated"] as? Bool == true { activations += 1 }
            #expect(try await activeAccuracy() >= bootstrap, "step \(step): the active model got worse")
        }
        #expect(try await activeAccuracy() >= bootstrap - 0.02, "above the floor")
        // A typical versicolor flower is still a versicolor.
        let versicolor = #"{"features":{"sepal_length":5.9,"sepal_width":2.8,"petal_length":4.3,"petal_width":1.3}}"#
        let prediction = try await HTTP.json("POST", cluster.url + "/v1/predict", key: predictor, versicolor)
        #expect((prediction.json?["predictions"] as? [[String: Any]])?.first?["label"] as? String == "versicolor", "\(prediction.text)")
        // Retention: the active, the previous and the newest 5 are kept; the rest are deleted.
        let listed = try await HTTP.send("GET", cluster.url + "/v1/models", headers: ["Authorization": "Bearer \(trainer)"])
        let versions = (listed.json?["models"] as? [[String: Any]] ?? []).compactMap { $0["version"] as? Int }
        #expect(versions.count <= 7 && versions.contains(28) && versions.filter { $0 < 24 }.count <= 2, "\(versions)")
        #expect(activations < 27, "\(activations) poisoned uploads went live")
    }

    @Test func uploadsAreLimitedPerKeyAndTrainedOneAtATime() async throws {
        let cluster = try await Cluster()
        let trainer = try await cluster.createKey(scopes: ["train"]).key
        let csv = try Cluster.irisCSV()
        // The default training limit: 3 at once, then 12 per hour.
        var statuses: [Int] = []
        var last: HTTP.Response?
        for _ in 0..<4 {
            last = try await train(cluster, key: trainer, csv: csv)
            statuses.append(last!.status)
        }
        #expect(statuses == [201, 201, 201, 429], "\(statuses)")
        #expect(last?.json?["policy"] as? String == "training")
        #expect(Int(last?.header("Retry-After") ?? "") ?? 0 > 60)
        // A key may not name its own policy after one of Sluice's.
        for reserved in ["training", "auth", "job-status", "daily"] {
            let refused = try await HTTP.json(
                "POST", cluster.url + "/v1/keys", key: cluster.adminKey,
                #"{"name":"x","scopes":["predict"],"policies":[{"name":"\#(reserved)","rate":1,"period":1,"burst":1}]}"#)
            #expect(refused.status == 422, "\(reserved): \(refused.status)")
        }
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
        // Listed as unverified, and the listing says so in the log.
        let listed = try await HTTP.send("GET", cluster.url + "/v1/models", headers: ["Authorization": "Bearer \(trainer)"])
        let first = (listed.json?["models"] as? [[String: Any]])?.first { $0["version"] as? Int == 1 }
        #expect(first?["verified"] as? Bool == false, "\(listed.text)")
        #expect(cluster.replicas[0].log.contains("stored model artifact fails verification"))
        // An admin cannot activate it either.
        let activation = try await HTTP.send("POST", cluster.url + "/v1/models/1/activate", headers: ["Authorization": "Bearer \(cluster.adminKey)"])
        #expect(activation.status == 409)
        #expect((activation.json?["detail"] as? String)?.contains("signature") == true)
    }
}
