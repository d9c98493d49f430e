import Foundation
import SluiceAuth
import SluiceTestSupport
import Testing

/// The model-signing keyring rotated while two replicas and a worker run: the keys file is
/// rewritten by symlink swap (as Vault Agent and Kubernetes do), nothing restarts.
@Suite("Signing keys rotated without a restart", .serialized)
struct SigningKeyRotationTests {
    let keyA = Cluster.randomHex()
    let keyB = Cluster.randomHex()

    func models(_ cluster: Cluster, key: String) async throws -> [Int: [String: Any]] {
        let listed = try await HTTP.send("GET", cluster.url + "/v1/models", headers: ["Authorization": "Bearer \(key)"])
        let models = try #require(listed.json?["models"] as? [[String: Any]], "\(listed.text)")
        return Dictionary(uniqueKeysWithValues: models.map { ($0["version"] as? Int ?? 0, $0) })
    }

    /// Waits until every process counted one more reload of the keyring with `outcome`.
    func waitForReload(_ cluster: Cluster, metricsKey: String, outcome: String, count: Double) async throws {
        let labels = ["secret": "SLUICE_MODEL_SIGNING_KEYS", "outcome": outcome]
        let deadline = ContinuousClock.now + .seconds(10)
        for (index, process) in (cluster.replicas + cluster.workers).enumerated() {
            let isReplica = index < cluster.replicas.count
            while true {
                let metrics = try await HTTP.send(
                    "GET", process.baseURL + "/metrics", headers: isReplica ? ["Authorization": "Bearer \(metricsKey)"] : [:]).text
                if metricSample(metrics, "sluice_secret_reloads_total", labels) == count { break }
                guard ContinuousClock.now < deadline else {
                    throw TestSupportError("no \(outcome) reload of the keyring on \(process.baseURL): \(process.log.suffix(800))")
                }
                try await Task.sleep(for: .milliseconds(100))
            }
        }
    }

    @Test func artifactsOfARetiredKeyVerifyUntilResignedAndUnknownKeysAreRefusedEverywhere() async throws {
        let secrets = try SecretDirectory(["signing-keys": "a:\(keyA)\n"])
        let cluster = try await Cluster(
            replicas: 2, workers: 1, environment: ["SLUICE_SECRETS_POLL_INTERVAL": "0.2"],
            signing: ["SLUICE_MODEL_SIGNING_KEYS_FILE": secrets.file("signing-keys")])
        let admin = cluster.adminKey
        let trainer = try await cluster.createKey(scopes: ["train"]).key
        let metricsKey = try await cluster.createKey(scopes: ["metrics"]).key
        let predictor = try await cluster.createKey(scopes: ["predict"]).key
        #expect(try await models(cluster, key: trainer)[1]?["signing_key_id"] as? String == "a", "the first model is signed by the only key")

        // B becomes active, A stays listed: version 1 still verifies, version 2 is signed by B.
        try secrets.swap(["signing-keys": "b:\(keyB)\na:\(keyA)\n"])
        try await waitForReload(cluster, metricsKey: metricsKey, outcome: "ok", count: 1)
        let trained = try await HTTP.send(
            "POST", cluster.url + "/v1/models", headers: ["Authorization": "Bearer \(trainer)", "Content-Type": "text/csv"],
            body: Data(try Cluster.irisCSV().utf8))
        #expect(trained.status == 201 && trained.json?["activated"] as? Bool == true, "\(trained.text)")
        var listed = try await models(cluster, key: trainer)
        #expect(listed[2]?["signing_key_id"] as? String == "b" && listed[2]?["verified"] as? Bool == true, "\(listed)")
        #expect(listed[1]?["signing_key_id"] as? String == "a" && listed[1]?["verified"] as? Bool == true, "\(listed)")
        let back = try await HTTP.send("POST", cluster.url + "/v1/models/1/activate", headers: ["Authorization": "Bearer \(admin)"])
        #expect(back.status == 200, "an artifact of the retired key can still go live: \(back.text)")

        // A keys file that does not parse is refused and the ring in use kept.
        try secrets.swap(["signing-keys": "b:short\n"])
        try await waitForReload(cluster, metricsKey: metricsKey, outcome: "invalid", count: 1)
        for replica in cluster.replicas {
            let line = replica.log.split(separator: "\n").filter { $0.contains("secret not reloaded") && $0.contains("SLUICE_MODEL_SIGNING_KEYS") }
            #expect(line.count == 1, "logged once: \(line)")
            #expect(!replica.log.contains("short"), "the log never quotes a key")
        }

        // Re-sign with B, then drop A: every retained model still loads and can go live.
        let resign = try runCommand(
            [ServiceProcess.binary, "models", "resign", "--url", cluster.url], environment: ["SLUICE_ADMIN_KEY": admin, "SLUICE_ADMIN_KEY_FILE": ""])
        #expect(resign.status == 0 && resign.output.contains("signing key: b") && resign.output.contains("re-signed: 1"), "\(resign.output)")
        try secrets.swap(["signing-keys": "b:\(keyB)\n"])
        try await waitForReload(cluster, metricsKey: metricsKey, outcome: "ok", count: 2)
        listed = try await models(cluster, key: trainer)
        #expect(listed.values.allSatisfy { $0["verified"] as? Bool == true && $0["signing_key_id"] as? String == "b" }, "\(listed)")
        for version in [2, 1] {
            let activated = try await HTTP.send("POST", cluster.url + "/v1/models/\(version)/activate", headers: ["Authorization": "Bearer \(admin)"])
            #expect(activated.status == 200, "\(version): \(activated.text)")
        }
        try await Task.sleep(for: .milliseconds(500))
        for replica in cluster.replicas {
            let served = try await HTTP.json("POST", replica.baseURL + "/v1/predict", key: predictor, Cluster.setosa)
            #expect(served.json?["model_version"] as? Int == 1, "\(served.text)")
        }

        // An artifact that names a key no longer listed is refused by every replica and the worker.
        let redis = cluster.redis.client()
        defer { redis.shutdown() }
        _ = try await redis.send("HSET", "sluice:{models}:artifact:2", "kid", "a")
        _ = try await redis.send("SET", "sluice:{models}:active", "2")
        _ = try await redis.send("PUBLISH", "sluice:models:activated", "2")
        try await Task.sleep(for: .milliseconds(800))
        for replica in cluster.replicas {
            let served = try await HTTP.json("POST", replica.baseURL + "/v1/predict", key: predictor, Cluster.setosa)
            #expect(served.json?["model_version"] as? Int == 1, "the verified model keeps serving: \(served.text)")
            let metrics = try await HTTP.send("GET", replica.baseURL + "/metrics", headers: ["Authorization": "Bearer \(metricsKey)"]).text
            #expect(metricSample(metrics, "sluice_model_artifacts_refused_total") == 1, "\(replica.log.suffix(800))")
        }
        let worker = try #require(cluster.workers.first)
        let workerMetrics = try await HTTP.send("GET", worker.baseURL + "/metrics").text
        #expect(metricSample(workerMetrics, "sluice_model_artifacts_refused_total") == 1, "\(worker.log.suffix(800))")
        listed = try await models(cluster, key: trainer)
        #expect(listed[2]?["verified"] as? Bool == false, "\(listed)")
    }
}

/// `SLUICE_ADMIN_KEY_FILE` rewritten while a replica runs.
@Suite("Bootstrap admin key rotated without a restart", .serialized)
struct AdminKeyRotationTests {
    @Test func aNewAdminKeyIsTakenAndAWeakOneRefused() async throws {
        let redis = try RedisServer()
        let first = APIKey.generate().revealed
        let secrets = try SecretDirectory(["admin-key": first + "\n"])
        let replica = try ServiceProcess(redisURL: redis.url, environment: [
            "SLUICE_ADMIN_KEY_FILE": secrets.file("admin-key"), "SLUICE_MODEL_SIGNING_KEY": Cluster.randomHex(),
            "SLUICE_SECRETS_POLL_INTERVAL": "0.2",
        ])
        try await replica.waitUntilReady()
        func status(_ key: String) async throws -> Int { try await HTTP.send("GET", replica.baseURL + "/v1/keys", headers: ["Authorization": "Bearer \(key)"]).status }
        #expect(try await status(first) == 200)

        let second = APIKey.generate().revealed
        try secrets.swap(["admin-key": second + "\n"])
        try waitUntil(timeout: 5) { replica.log.contains("reloaded a secret") && replica.log.contains("SLUICE_ADMIN_KEY") }
        #expect(try await status(second) == 200, "the new key works at once")
        #expect(try await status(first) == 200, "the previous one for the rotation window")

        // A weak key is refused, logged once without the key, and the current one kept.
        let weak = "sk_abcdefgh_" + String(repeating: "a", count: 40)
        try secrets.swap(["admin-key": weak])
        try waitUntil(timeout: 5) { replica.log.contains("secret not reloaded") }
        try await Task.sleep(for: .milliseconds(600))
        #expect(replica.log.split(separator: "\n").filter { $0.contains("secret not reloaded") }.count == 1)
        #expect(!replica.log.contains(weak) && !replica.log.contains(second) && !replica.log.contains(first), "no key logged")
        #expect(try await status(weak) == 401)
        #expect(try await status(second) == 200)
    }
}
