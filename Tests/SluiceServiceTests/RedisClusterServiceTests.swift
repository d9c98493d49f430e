import Foundation
import SluiceAuth
import SluiceQueue
import SluiceTestSupport
import Testing

/// Replicas and a worker on a real 6-node Redis Cluster (`SLUICE_REDIS_MODE=cluster`, two seeds
/// in the URL): exact limits per key across replicas with the keys' state spread over the
/// masters, queued jobs completed, and key changes announced over cluster pub/sub.
@Suite("Sluice on a Redis Cluster", .serialized)
struct RedisClusterServiceTests {
    @Test func limitsQueueAndKeyChangesWorkOnACluster() async throws {
        let redis = try RedisClusterServer()
        let adminKey = APIKey.generate().revealed
        let signingKey = Cluster.randomHex()
        let environment = ["SLUICE_ADMIN_KEY": adminKey, "SLUICE_MODEL_SIGNING_KEY": signingKey, "SLUICE_REDIS_MODE": "cluster"]
        let replicas = try (0..<2).map { _ in try ServiceProcess(redisURL: redis.url(seeds: 2), environment: environment) }
        for replica in replicas { try await replica.waitUntilReady() }
        let worker = try ServiceProcess(
            "worker", redisURL: redis.url(seeds: 2), environment: ["SLUICE_MODEL_SIGNING_KEY": signingKey, "SLUICE_REDIS_MODE": "cluster"],
            arguments: ["--visibility-timeout", "2"])
        try await worker.waitUntilHealthy()

        func create(_ body: String) async throws -> (key: String, id: String) {
            let response = try await HTTP.json("POST", "\(replicas[0].baseURL)/v1/keys", key: adminKey, body)
            let json = try #require(response.json, "\(response.status) \(response.text)")
            return (try #require(json["key"] as? String), try #require(json["id"] as? String))
        }
        // 12 keys, 5/s with bursts of 5; 8 requests each at once over both replicas: exactly 5 pass.
        var keys: [(key: String, id: String)] = []
        for index in 0..<12 {
            keys.append(try await create(#"{"name":"k\#(index)","scopes":["predict"],"policies":[{"name":"default","rate":5,"period":1,"burst":5}]}"#))
        }
        for (key, _) in keys {
            let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
                for index in 0..<8 {
                    group.addTask { try await HTTP.json("POST", "\(replicas[index % 2].baseURL)/v1/predict", key: key, Cluster.setosa).status }
                }
                return try await group.reduce(into: [Int]()) { $0.append($1) }
            }
            #expect(statuses.filter { $0 == 200 }.count == 5 && statuses.filter { $0 == 429 }.count == 3, "\(statuses.sorted())")
        }
        // The limiter state of those keys lies on every master, not one.
        let perMaster = try redis.masters().map { master in
            try redis.cli(master, "--scan", "--pattern", "sluice:rl:*").split(separator: "\n").count
        }
        #expect(perMaster.count == 3 && perMaster.allSatisfy { $0 > 0 }, "limiter keys per master: \(perMaster)")

        // Queued work is done by the worker through the cluster.
        let queued = try await create(#"{"name":"q","scopes":["predict"],"policies":[{"name":"default","rate":20,"period":1,"burst":1}],"overflow":"queue"}"#)
        var locations: [String] = []
        for _ in 0..<6 {
            let response = try await HTTP.json("POST", "\(replicas[1].baseURL)/v1/predict", key: queued.key, Cluster.setosa)
            if response.status == 202, let location = response.header("Location") { locations.append(location) }
        }
        #expect(locations.count >= 4, "queued: \(locations.count)")
        let deadline = ContinuousClock.now + .seconds(15)
        var done = 0
        while ContinuousClock.now < deadline, done < locations.count {
            done = 0
            for location in locations {
                let job = try await HTTP.send("GET", replicas[0].baseURL + location, headers: ["Authorization": "Bearer \(queued.key)"])
                if job.status == 200, job.text.contains(#""status":"succeeded""#) { done += 1 }
            }
            try await Task.sleep(for: .milliseconds(200))
        }
        let sample = try await HTTP.send("GET", replicas[0].baseURL + (locations.first ?? ""), headers: ["Authorization": "Bearer \(queued.key)"])
        #expect(done == locations.count, "\(done) of \(locations.count) queued jobs completed; \(sample.status) \(sample.text); worker: \(worker.log.suffix(1500))")

        // A key revoked through one replica is refused by the other at once (cluster pub/sub).
        let (revoked, id) = keys[0]
        _ = try await HTTP.send("DELETE", replicas[0].baseURL + "/v1/keys/\(id)", headers: ["Authorization": "Bearer \(adminKey)"])
        try await Task.sleep(for: .milliseconds(300))
        #expect(try await HTTP.json("POST", "\(replicas[1].baseURL)/v1/predict", key: revoked, Cluster.setosa).status == 401)
    }
}

extension RedisClusterServiceTests {
    /// 300 jobs of 30 keys spread over the queue's partitions (and so over the masters); a worker
    /// killed with `kill -9` while holding claimed jobs; another finishes them: every job
    /// succeeds, each outcome written once.
    @Test func queuedJobsSurviveAWorkerKilledOnACluster() async throws {
        let redis = try RedisClusterServer()
        let adminKey = APIKey.generate().revealed
        let signingKey = Cluster.randomHex()
        let replica = try ServiceProcess(
            redisURL: redis.url(), environment: ["SLUICE_ADMIN_KEY": adminKey, "SLUICE_MODEL_SIGNING_KEY": signingKey, "SLUICE_REDIS_MODE": "cluster"])
        try await replica.waitUntilReady()
        let workerEnvironment = ["SLUICE_MODEL_SIGNING_KEY": signingKey, "SLUICE_REDIS_MODE": "cluster"]
        let doomed = try ServiceProcess("worker", redisURL: redis.url(), environment: workerEnvironment, arguments: ["--visibility-timeout", "2", "--batch-size", "8"])
        try await doomed.waitUntilHealthy()

        var jobs: [(key: String, location: String)] = []
        for index in 0..<30 {
            let response = try await HTTP.json(
                "POST", "\(replica.baseURL)/v1/keys", key: adminKey,
                #"{"name":"q\#(index)","scopes":["predict"],"policies":[{"name":"default","rate":50,"period":1,"burst":1}],"overflow":"queue","max_queue_delay":30}"#)
            let key = try #require(response.json?["key"] as? String, "\(response.text)")
            let answers = try await withThrowingTaskGroup(of: HTTP.Response.self) { group in
                for _ in 0..<10 { group.addTask { try await HTTP.json("POST", "\(replica.baseURL)/v1/predict", key: key, Cluster.setosa) } }
                return try await group.reduce(into: [HTTP.Response]()) { $0.append($1) }
            }
            for answer in answers where answer.status == 202 { jobs.append((key, try #require(answer.header("Location")))) }
        }
        #expect(jobs.count >= 250, "queued: \(jobs.count)")
        try await Task.sleep(for: .milliseconds(300))
        doomed.kill()
        let successor = try ServiceProcess("worker", redisURL: redis.url(), environment: workerEnvironment, arguments: ["--visibility-timeout", "2"])
        try await successor.waitUntilHealthy()

        let queue = PartitionedJobQueue(client: try redis.client())
        defer { queue.client.shutdown() }
        let deadline = ContinuousClock.now + .seconds(60)
        while try await queue.depth().total > 0, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(250)) }
        var succeeded = 0
        for (key, location) in jobs {
            let job = try await HTTP.send("GET", replica.baseURL + location, headers: ["Authorization": "Bearer \(key)"])
            if job.text.contains(#""status":"succeeded""#) { succeeded += 1 }
        }
        #expect(succeeded == jobs.count, "\(succeeded) of \(jobs.count) succeeded")
        let stats = try await queue.stats()
        #expect(stats["completed"] == jobs.count, "each outcome written once: \(stats)")
        // The partitions holding them sit on every master.
        let perMaster = try redis.masters().map { master in
            try redis.cli(master, "--scan", "--pattern", "sluice:{jobs:*}:stats").split(separator: "\n").count
        }
        #expect(perMaster.allSatisfy { $0 > 0 }, "queue partitions per master: \(perMaster)")
    }
}
