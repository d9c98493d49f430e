import Foundation
import SluiceAuth
import SluiceQueue
import SluiceRedis
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
            let response = try await HTTP.politeJSON("POST", "\(replicas[0].baseURL)/v1/keys", key: adminKey, body)
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
            let response = try await HTTP.politeJSON(
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
        defer { (queue.client as? RedisClient)?.shutdown() }
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

extension RedisClusterServiceTests {
    /// Live resharding under load: a hot key's slot migrated by hand (the key moved while its slot
    /// is MIGRATING: ASK; then assigned: MOVED) and 1,000 other slots moved by
    /// `redis-cli --cluster reshard`, while two replicas serve 6 keys at twice their rate: no
    /// request fails, no key is admitted beyond burst + rate × time, and the replicas count the
    /// redirects they followed in `sluice_redis_redirects_total{kind}`.
    @Test func liveReshardingUnderLoadFailsNothingAndAdmitsExactly() async throws {
        let redis = try RedisClusterServer()
        let (replicas, adminKey, keys) = try await Self.replicas(on: redis, keys: 6, named: "r")
        let hot = keys[0]
        let hotKey = "sluice:rl:{\(hot.id)}:default"
        let slot = try #require(Int(try redis.cli(redis.nodes[0], "CLUSTER", "KEYSLOT", hotKey).trimmingCharacters(in: .whitespacesAndNewlines)))

        let started = ContinuousClock.now
        let seconds = 6.0
        let load = Task { try await Self.offer(keys.map(\.key), to: replicas, for: seconds) }
        try await Task.sleep(for: .seconds(1))
        let (source, destination, inSlot) = try redis.beginMigration(of: slot)
        // Every key of the slot (the limiter state and the key record share the key id's hash tag).
        #expect(inSlot.contains(hotKey), "\(inSlot)")
        // What one limiter call of the hot key touches moves together (its state and its usage
        // hash, as a reshard's MIGRATE batches do): requests for it now meet ASK.
        let call = [hotKey] + inSlot.filter { $0.hasPrefix("sluice:usage:{\(hot.id)}") }
        try redis.migrate(call, from: source, to: destination)
        try await Task.sleep(for: .seconds(1))
        try redis.migrate(inSlot.filter { !call.contains($0) }, from: source, to: destination)
        try redis.assign(slot, to: destination)
        // 1,000 more slots, from every master to another, by the tool operators use.
        let target = try #require(try redis.masters().first { $0.port != destination.port })
        let reshard = try runCommand([
            "redis-cli", "--cluster", "reshard", "127.0.0.1:\(target.port)", "--cluster-from", "all", "--cluster-to", try redis.id(of: target),
            "--cluster-slots", "1000", "--cluster-yes",
        ])
        #expect(reshard.status == 0, "\(reshard.output.suffix(1500))")
        let results = try await load.value
        let elapsed = (ContinuousClock.now - started).seconds
        for (index, result) in results.enumerated() {
            #expect(result.failed.isEmpty, "key \(index): \(result.failed)")
            #expect(Double(result.admitted) <= 5 + 20 * elapsed, "key \(index): \(result.admitted) admitted in \(elapsed) s")
            #expect(Double(result.admitted) >= 0.8 * 20 * seconds, "key \(index) kept being served: \(result.admitted)")
        }
        let metricsKey = try #require(
            try await HTTP.json("POST", "\(replicas[0].baseURL)/v1/keys", key: adminKey, #"{"name":"scraper","scopes":["metrics"]}"#).json?["key"] as? String)
        var redirects: [String: Int] = [:]
        for replica in replicas {
            let text = try await HTTP.send("GET", replica.baseURL + "/metrics", headers: ["Authorization": "Bearer \(metricsKey)"]).text
            for kind in ["moved", "ask"] {
                let value = text.firstMatch(of: try Regex(#"sluice_redis_redirects_total\{kind="\#(kind)"\} (\d+)"#)).flatMap { Int($0.output[1].substring ?? "") }
                redirects[kind, default: 0] += value ?? 0
            }
        }
        #expect(redirects["ask", default: 0] > 0 && redirects["moved", default: 0] > 0, "redirects followed: \(redirects)")
    }
}

extension RedisClusterServiceTests {
    /// Each key offered 40/s (twice its rate of 20/s) over `replicas` for `seconds`: per key, the
    /// requests admitted and what answered neither 200 nor 429.
    static func offer(_ keys: [String], to replicas: [ServiceProcess], for seconds: Double) async throws -> [(admitted: Int, failed: [String])] {
        let started = ContinuousClock.now
        return try await withThrowingTaskGroup(of: (Int, Int, [String]).self) { group in
            for (index, key) in keys.enumerated() {
                group.addTask {
                    var admitted = 0
                    var failed: [String] = []
                    var sent = 0
                    while (ContinuousClock.now - started).seconds < seconds {
                        let response = try await HTTP.json("POST", "\(replicas[sent % replicas.count].baseURL)/v1/predict", key: key, Cluster.setosa)
                        if response.status == 200 {
                            admitted += 1
                        } else if response.status != 429 {
                            failed.append("HTTP \(response.status)")
                        }
                        sent += 1
                        try await Task.sleep(for: .milliseconds(25))
                    }
                    return (index, admitted, failed)
                }
            }
            var results = Array(repeating: (admitted: 0, failed: [String]()), count: keys.count)
            for try await (index, admitted, failed) in group { results[index] = (admitted, failed) }
            return results
        }
    }

    /// A graceful `CLUSTER FAILOVER` (what an operator or a managed service does for maintenance)
    /// of the master holding a key's state, under load: no request fails, limits stay exact.
    @Test func aGracefulFailoverUnderLoadFailsNothing() async throws {
        let redis = try RedisClusterServer()
        let (replicas, _, keys) = try await Self.replicas(on: redis, keys: 6, named: "f")
        let slot = try #require(Int(try redis.cli(redis.nodes[0], "CLUSTER", "KEYSLOT", "sluice:rl:{\(keys[0].id)}:default")
            .trimmingCharacters(in: .whitespacesAndNewlines)))
        let oldMaster = try redis.master(of: slot)
        let oldID = try redis.id(of: oldMaster)
        let successor = try #require(redis.nodes.first { node in
            (try? redis.cli(node, "ROLE"))?.hasPrefix("slave") == true && (try? redis.cli(node, "CLUSTER", "NODES"))?
                .split(separator: "\n").contains { $0.contains("myself") && $0.contains(oldID) } == true
        }, "the old master's replica")

        let started = ContinuousClock.now
        let seconds = 5.0
        let load = Task { try await Self.offer(keys.map(\.key), to: replicas, for: seconds) }
        try await Task.sleep(for: .seconds(1.5))
        #expect(try redis.cli(successor, "CLUSTER", "FAILOVER").contains("OK"))
        try waitUntil(timeout: 10) { (try? redis.master(of: slot))?.port == successor.port }
        let results = try await load.value
        let elapsed = (ContinuousClock.now - started).seconds
        for (index, result) in results.enumerated() {
            #expect(result.failed.isEmpty, "key \(index): \(result.failed)")
            #expect(Double(result.admitted) <= 5 + 20 * elapsed, "key \(index): \(result.admitted) admitted in \(elapsed) s")
        }
        #expect(try redis.master(of: slot).port == successor.port, "the replica took over")
    }
}

extension RedisClusterServiceTests {
    /// `kill -9` of the master holding some keys' state, under load: those keys get 503 until
    /// its replica is promoted (reported: how many, for how long), the other keys nothing; after
    /// the promotion every key is served again, within one burst of its limit (writes the dead
    /// master had not yet replicated may be lost), and no script is missing on the new master.
    @Test func aMasterKilledUnderLoadCostsItsKeysOnlyTheFailover() async throws {
        let redis = try RedisClusterServer()
        let (replicas, _, keys) = try await Self.replicas(on: redis, keys: 9, named: "x")
        let slots = try keys.map { key in
            try #require(Int(try redis.cli(redis.nodes[0], "CLUSTER", "KEYSLOT", "{\(key.id)}").trimmingCharacters(in: .whitespacesAndNewlines)))
        }
        let victim = try redis.master(of: slots[0])
        let onVictim = try slots.map { try redis.master(of: $0).port == victim.port }

        let started = ContinuousClock.now
        let seconds = 12.0
        let load = Task { try await Self.offer(keys.map(\.key), to: replicas, for: seconds) }
        try await Task.sleep(for: .seconds(2))
        let killedAt = (ContinuousClock.now - started).seconds
        victim.crash()
        let results = try await load.value
        let elapsed = (ContinuousClock.now - started).seconds

        var outage: [Int] = []
        for (index, result) in results.enumerated() {
            #expect(result.failed.allSatisfy { $0 == "HTTP 503" }, "key \(index): \(Set(result.failed))")
            if onVictim[index] { outage.append(result.failed.count) } else { #expect(result.failed.isEmpty, "key \(index) is on another master") }
            #expect(Double(result.admitted) <= 5 + 5 + 20 * elapsed, "key \(index): \(result.admitted) in \(elapsed) s: beyond one extra burst")
            #expect(Double(result.admitted) >= 20 * (seconds - killedAt - 6), "key \(index) is served again after the promotion: \(result.admitted)")
        }
        print("master killed at \(killedAt) s: failed requests per key on it \(outage) of ~\(Int(40 * seconds)) offered each")
        #expect(!outage.isEmpty && outage.allSatisfy { $0 < 40 * 7 }, "503s only while the failover lasts: \(outage)")
        for replica in replicas { #expect(!replica.log.contains("NOSCRIPT"), "no script was missing on the promoted master") }
    }
}

extension RedisClusterServiceTests {
    /// `/readyz` asks every master in turn: the first (where keyless commands go) killed must not
    /// make every replica unready, which would drain the whole fleet from the load balancer for
    /// one node's keys (scripts/nemesis found it so). Before the failover and after it; and a
    /// replica starting meanwhile starts (its start-up check needs one master, not all).
    @Test func everyReplicaStaysReadyWhileOneMasterIsDown() async throws {
        let redis = try RedisClusterServer()
        let (replicas, _, _) = try await Self.replicas(on: redis, keys: 0, named: "r")
        let first = try #require(try redis.masters().min { "127.0.0.1:\($0.port)" < "127.0.0.1:\($1.port)" })
        first.crash()
        // Started at once, within the cluster's 2 s node timeout: before the failover.
        let late = try ServiceProcess(redisURL: redis.url(seeds: 3), environment: replicas[0].environment)
        var statuses: [Int] = []
        for _ in 0..<16 {
            for replica in replicas { statuses.append(try await HTTP.send("GET", replica.baseURL + "/readyz").status) }
            try await Task.sleep(for: .milliseconds(300))
        }
        #expect(statuses.allSatisfy { $0 == 200 }, "readiness while a master is down and failed over: \(statuses)")
        try await late.waitUntilReady()
        #expect(late.exitStatus == nil && !late.log.contains("refusing to start"), "\(late.log)")
    }

    /// Two replicas in cluster mode on `redis`, and `count` predict keys at 20/s with bursts of 5.
    static func replicas(on redis: RedisClusterServer, keys count: Int, named prefix: String) async throws
        -> (replicas: [ServiceProcess], adminKey: String, keys: [(key: String, id: String)])
    {
        let adminKey = APIKey.generate().revealed
        let environment = ["SLUICE_ADMIN_KEY": adminKey, "SLUICE_MODEL_SIGNING_KEY": Cluster.randomHex(), "SLUICE_REDIS_MODE": "cluster"]
        let replicas = try (0..<2).map { _ in try ServiceProcess(redisURL: redis.url(seeds: 3), environment: environment) }
        for replica in replicas { try await replica.waitUntilReady() }
        var keys: [(key: String, id: String)] = []
        for index in 0..<count {
            let response = try await HTTP.politeJSON(
                "POST", "\(replicas[0].baseURL)/v1/keys", key: adminKey,
                #"{"name":"\#(prefix)\#(index)","scopes":["predict"],"policies":[{"name":"default","rate":20,"period":1,"burst":5}]}"#)
            let json = try #require(response.json, "\(response.text)")
            keys.append((try #require(json["key"] as? String), try #require(json["id"] as? String)))
        }
        return (replicas, adminKey, keys)
    }
}
