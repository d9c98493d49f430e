import Foundation
import SluiceCore
import SluiceQueue
import SluiceTestSupport
import Testing

/// Overflow `delay` and `queue` end to end: real replicas, real workers, one real Redis.
@Suite("Deferral: delay and queue instead of reject")
struct DeferralTests {
    static func policy(rate: Int, burst: Int) -> String {
        #"[{"name":"default","rate":\#(rate),"period":1,"burst":\#(burst)}]"#
    }

    @Test func delayedRequestsOnTwoReplicasFinishOneEmissionIntervalApart() async throws {
        let cluster = try await Cluster(replicas: 2)
        let (key, _) = try await cluster.createKey(
            scopes: ["predict"], policies: Self.policy(rate: 5, burst: 1), extra: #","overflow":"delay","max_delay":5"#)
        let start = ContinuousClock.now
        let results = try await withThrowingTaskGroup(of: (status: Int, finished: Double, held: String?, slot: Double?).self) { group in
            for index in 0..<20 {
                group.addTask {
                    let response = try await HTTP.json("POST", "\(cluster.replicas[index % 2].baseURL)/v1/predict", key: key, Cluster.setosa)
                    return (response.status, (ContinuousClock.now - start).seconds, response.header("Sluice-Delay"),
                            response.header("Sluice-Slot").flatMap(Double.init))
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(results.allSatisfy { $0.status == 200 }, "\(results.map(\.status))")
        #expect(results.filter { $0.held != nil }.count == 19, "all but the first were held")
        // One global emission interval (200 ms) on the limiter's clock, not one per replica (which
        // would pair them up): the slots are exact, whatever this machine's scheduling does.
        let slots = results.compactMap(\.slot).sorted()
        try #require(slots.count == 20, "every answer names its slot")
        let slotGaps = zip(slots.dropFirst(), slots).map { $0 - $1 }
        #expect(slotGaps.allSatisfy { abs($0 - 0.2) < 0.002 }, "gaps between slots: \(slotGaps)")
        // And each request really was held until its slot: completions spread over the 19 intervals.
        let finished = results.map(\.finished).sorted()
        #expect(finished.last! - finished.first! > 19 * 0.2 - 0.1, "completions: \(finished)")
    }

    @Test func aClientThatHangsUpWhileHeldBreaksNothing() async throws {
        let cluster = try await Cluster()
        let (key, _) = try await cluster.createKey(
            scopes: ["predict"], policies: Self.policy(rate: 1, burst: 1), extra: #","overflow":"delay","max_delay":5"#)
        #expect(try await HTTP.json("POST", "\(cluster.url)/v1/predict", key: key, Cluster.setosa).status == 200)
        let request = "POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer \(key)\r\n"
            + "Content-Type: application/json\r\nContent-Length: \(Cluster.setosa.utf8.count)\r\n\r\n\(Cluster.setosa)"
        try RedisServer.sendAndHangUp(port: cluster.replicas[0].port, request, after: 0.3)
        #expect(try await HTTP.send("GET", "\(cluster.url)/healthz").status == 200)
        let next = try await HTTP.json("POST", "\(cluster.url)/v1/predict", key: key, Cluster.setosa)
        #expect(next.status == 200)
        // The abandoned request's slot stayed spent: this one waited for the slot after it.
        #expect(Double(next.header("Sluice-Delay") ?? "0")! > 1.2)
    }

    @Test func queuedRequestsRunAtTheirSlotsInOrderWithoutSlowingOtherKeys() async throws {
        let cluster = try await Cluster(replicas: 2, workers: 1)
        let (key, _) = try await cluster.createKey(
            scopes: ["predict"], policies: Self.policy(rate: 10, burst: 1), extra: #","overflow":"queue""#)
        let (other, _) = try await cluster.createKey(scopes: ["predict"])
        async let otherTraffic: [(Int, Double)] = Self.timedRequests(20, cluster: cluster, key: other, spacing: .milliseconds(100))
        let responses = try await Self.concurrentPredictions(100, cluster: cluster, key: key)
        #expect(responses.filter { $0.status == 200 }.count <= 1, "only the burst is served at once")
        let accepted = responses.filter { $0.status == 202 }
        #expect(accepted.count >= 99)
        for response in accepted {
            #expect(response.header("Location")?.hasPrefix("/v1/jobs/") == true)
            #expect(Int(response.header("Retry-After") ?? "") ?? 0 >= 1)
        }
        let immediate = try await otherTraffic
        #expect(immediate.allSatisfy { $0.0 == 200 && $0.1 < 1 }, "another key's traffic is served at once: \(immediate)")

        var jobs: [[String: Any]] = []
        for response in accepted {
            let location = try #require(response.header("Location"))
            let job = try await cluster.jobResult(location, key: key)
            #expect(job["status"] as? String == "succeeded")
            #expect((job["result"] as? [String: Any])?["predictions"] != nil)
            jobs.append(job)
        }
        let slots = jobs.map { (notBefore: Self.seconds($0["not_before"]), started: Self.seconds($0["started_at"])) }
            .sorted { $0.notBefore < $1.notBefore }
        for slot in slots { #expect(slot.started >= slot.notBefore, "a job never starts before its slot") }
        let spacing = zip(slots.dropFirst(), slots).map { $0.notBefore - $1.notBefore }
        #expect(spacing.allSatisfy { $0 >= 0.099 }, "slots 100 ms apart: \(spacing)")
        #expect(zip(slots.dropFirst(), slots).allSatisfy { $0.started >= $1.started }, "FIFO per key")
    }

    @Test func killingAWorkerMidQueueLosesNothingAndRunsEachJobOnce() async throws {
        let cluster = try await Cluster()
        let (key, keyID) = try await cluster.createKey(
            scopes: ["predict"], policies: Self.policy(rate: 60, burst: 1), extra: #","overflow":"queue""#)
        let responses = try await Self.concurrentPredictions(300, cluster: cluster, key: key)
        let ids = responses.filter { $0.status == 202 }.compactMap { ($0.json?["id"] as? String).flatMap(JobID.init) }
        #expect(ids.count >= 290)
        // A worker that claims and dies before completing anything ...
        let queue = PartitionedJobQueue(client: cluster.redis.client())
        try await Task.sleep(for: .milliseconds(100))
        let ghost = try await queue.claim(worker: "ghost", count: 5, visibility: .seconds(1), token: "ghost-claim")
        #expect(!ghost.jobs.isEmpty)
        // ... and a real one killed mid-run, while another keeps going.
        let doomed = try await cluster.startWorker()
        let survivor = try await cluster.startWorker()
        try await Task.sleep(for: .milliseconds(1500))
        #expect(try await queue.depth().total > 0, "killed mid-queue")
        doomed.kill()

        let deadline = ContinuousClock.now + .seconds(40)
        var pending = Set(ids)
        while !pending.isEmpty && ContinuousClock.now < deadline {
            for id in pending where try await queue.job(id, keyID: keyID)?.status.isFinished == true { pending.remove(id) }
            try await Task.sleep(for: .milliseconds(200))
        }
        #expect(pending.isEmpty, "\(pending.count) jobs never finished")
        for id in ids {
            let job = try #require(try await queue.job(id, keyID: keyID))
            #expect(job.status == .succeeded && job.result != nil)
        }
        let stats = try await queue.stats()
        #expect(stats["completed"] == ids.count, "exactly one result per job: \(stats)")
        #expect(stats["reclaimed"] ?? 0 >= ghost.jobs.count)
        #expect(try await queue.depth().total == 0)
        _ = survivor
    }

    @Test func pastTheHorizonOrTheDepthIs429() async throws {
        let cluster = try await Cluster()
        let (delayed, _) = try await cluster.createKey(
            scopes: ["predict"], policies: Self.policy(rate: 1, burst: 1), extra: #","overflow":"delay","max_delay":1"#)
        #expect(try await HTTP.json("POST", "\(cluster.url)/v1/predict", key: delayed, Cluster.setosa).status == 200)
        async let held = HTTP.json("POST", "\(cluster.url)/v1/predict", key: delayed, Cluster.setosa)
        try await Task.sleep(for: .milliseconds(50))
        let beyond = try await HTTP.json("POST", "\(cluster.url)/v1/predict", key: delayed, Cluster.setosa)
        #expect(beyond.status == 429)
        #expect(Int(beyond.header("Retry-After") ?? "") ?? 0 >= 1)
        #expect(try await held.status == 200)

        let (queued, _) = try await cluster.createKey(
            scopes: ["predict"], policies: Self.policy(rate: 1, burst: 1), extra: #","overflow":"queue","max_depth":2"#)
        var statuses: [Int] = []
        for _ in 0..<4 { statuses.append(try await HTTP.json("POST", "\(cluster.url)/v1/predict", key: queued, Cluster.setosa).status) }
        #expect(statuses == [200, 202, 202, 429])
        let full = try await HTTP.json("POST", "\(cluster.url)/v1/predict", key: queued, Cluster.setosa)
        #expect(full.status == 429 && full.json?["policy"] as? String == "max_depth")
        #expect(Int(full.header("Retry-After") ?? "") ?? 0 >= 1)
        #expect(full.header("Content-Type") == "application/problem+json")
    }

    @Test func queuedJobsSurviveARedisCrashWithAOF() async throws {
        let cluster = try await Cluster(redisArguments: ["--appendonly", "yes", "--appendfsync", "always"])
        let (key, _) = try await cluster.createKey(
            scopes: ["predict"], policies: Self.policy(rate: 20, burst: 1), extra: #","overflow":"queue""#)
        let responses = try await Self.concurrentPredictions(40, cluster: cluster, key: key)
        let locations = responses.filter { $0.status == 202 }.compactMap { $0.header("Location") }
        #expect(locations.count >= 39)
        cluster.redis.crash()
        try cluster.redis.start()
        try await cluster.replicas[0].waitUntilReady()
        let worker = try await cluster.startWorker()
        for location in locations {
            let job = try await cluster.jobResult(location, key: key)
            #expect(job["status"] as? String == "succeeded")
        }
        _ = worker
    }

    @Test func aJobExistsOnlyForTheKeyThatCreatedIt() async throws {
        let cluster = try await Cluster()
        let (owner, _) = try await cluster.createKey(
            scopes: ["predict"], policies: Self.policy(rate: 1, burst: 1), extra: #","overflow":"queue""#)
        let (stranger, _) = try await cluster.createKey(scopes: ["predict"])
        _ = try await HTTP.json("POST", "\(cluster.url)/v1/predict", key: owner, Cluster.setosa)
        let accepted = try await HTTP.json("POST", "\(cluster.url)/v1/predict", key: owner, Cluster.setosa)
        let location = try #require(accepted.header("Location"))
        let mine = try await HTTP.send("GET", "\(cluster.url)\(location)", headers: ["Authorization": "Bearer \(owner)"])
        #expect(mine.status == 202 && mine.json?["status"] as? String == "queued")
        #expect(Int(mine.header("Retry-After") ?? "") ?? 0 >= 1)
        let theirs = try await HTTP.send("GET", "\(cluster.url)\(location)", headers: ["Authorization": "Bearer \(stranger)"])
        let none = try await HTTP.send("GET", "\(cluster.url)/v1/jobs/\(JobID.generate())", headers: ["Authorization": "Bearer \(stranger)"])
        #expect(theirs.status == 404 && none.status == 404)
        #expect(theirs.json?["detail"] as? String == none.json?["detail"] as? String, "another key's job reads exactly like no job")
        #expect(try await HTTP.send("GET", "\(cluster.url)/v1/jobs/..%2Fkeys", headers: ["Authorization": "Bearer \(owner)"]).status == 404)
        #expect(try await HTTP.send("GET", "\(cluster.url)\(location)").status == 401)
    }

    @Test func aResultIsReadableUntilItExpires() async throws {
        let cluster = try await Cluster(workers: 1, workerArguments: ["--visibility-timeout", "2", "--result-ttl", "3"])
        let (key, _) = try await cluster.createKey(
            scopes: ["predict"], policies: Self.policy(rate: 2, burst: 1), extra: #","overflow":"queue""#)
        _ = try await HTTP.json("POST", "\(cluster.url)/v1/predict", key: key, Cluster.setosa)
        let accepted = try await HTTP.json("POST", "\(cluster.url)/v1/predict", key: key, Cluster.setosa)
        let location = try #require(accepted.header("Location"))
        let done = try await cluster.jobResult(location, key: key)
        #expect(done["status"] as? String == "succeeded" && done["completed_at"] != nil)
        try await Task.sleep(for: .milliseconds(3300))
        let expired = try await HTTP.send("GET", "\(cluster.url)\(location)", headers: ["Authorization": "Bearer \(key)"])
        #expect(expired.status == 404, "a result lives --result-ttl seconds")
    }

    @Test func preferChoosesBetweenHoldingAndQueueing() async throws {
        let cluster = try await Cluster()
        let (delayed, _) = try await cluster.createKey(
            scopes: ["predict"], policies: Self.policy(rate: 2, burst: 1), extra: #","overflow":"delay","max_delay":5"#)
        _ = try await HTTP.json("POST", "\(cluster.url)/v1/predict", key: delayed, Cluster.setosa)
        let async_ = try await HTTP.json("POST", "\(cluster.url)/v1/predict", key: delayed, headers: ["Prefer": "respond-async"], Cluster.setosa)
        #expect(async_.status == 202 && async_.header("Preference-Applied") == "respond-async")
        let short = try await HTTP.json("POST", "\(cluster.url)/v1/predict", key: delayed, headers: ["Prefer": "wait=0"], Cluster.setosa)
        #expect(short.status == 202 && short.header("Preference-Applied") == "wait=0", "a slot beyond the wait is queued")

        let (queued, _) = try await cluster.createKey(
            scopes: ["predict"], policies: Self.policy(rate: 2, burst: 1), extra: #","overflow":"queue""#)
        _ = try await HTTP.json("POST", "\(cluster.url)/v1/predict", key: queued, Cluster.setosa)
        let waited = try await HTTP.json("POST", "\(cluster.url)/v1/predict", key: queued, headers: ["Prefer": "wait=5"], Cluster.setosa)
        #expect(waited.status == 200 && waited.header("Preference-Applied") == "wait=5")
        #expect(Double(waited.header("Sluice-Delay") ?? "0")! > 0.2)
        let plain = try await HTTP.json("POST", "\(cluster.url)/v1/predict", key: queued, Cluster.setosa)
        #expect(plain.status == 202 && plain.header("Preference-Applied") == nil)
    }

    @Test func invalidInputNeverEntersTheQueue() async throws {
        let cluster = try await Cluster()
        let (key, _) = try await cluster.createKey(
            scopes: ["predict"], policies: Self.policy(rate: 1, burst: 1), extra: #","overflow":"queue""#)
        _ = try await HTTP.json("POST", "\(cluster.url)/v1/predict", key: key, Cluster.setosa)
        let bad = try await HTTP.json("POST", "\(cluster.url)/v1/predict", key: key, #"{"features":{"sepal_length":"NaN"}}"#)
        #expect(bad.status == 422 || bad.status == 429, "refused now, never queued")
        #expect(try await PartitionedJobQueue(client: cluster.redis.client()).depth().total == 0)
    }

    @Test func aWorkerStoppedWithSIGTERMFinishesWhatItHoldsAndExitsZero() async throws {
        let cluster = try await Cluster(workers: 1)
        let (key, _) = try await cluster.createKey(
            scopes: ["predict"], policies: Self.policy(rate: 50, burst: 1), extra: #","overflow":"queue""#)
        let responses = try await Self.concurrentPredictions(100, cluster: cluster, key: key)
        let ids = responses.filter { $0.status == 202 }.compactMap { ($0.json?["id"] as? String).flatMap(JobID.init) }
        try await Task.sleep(for: .milliseconds(500))
        #expect(try cluster.workers[0].terminate() == 0)
        #expect(cluster.workers[0].log.contains("worker stopped"))
        let queue = PartitionedJobQueue(client: cluster.redis.client())
        var running = 0
        for partition in 0..<PartitionedJobQueue.partitionCount {
            running += try await queue.client.send("ZCARD", "sluice:{jobs:\(partition)}:running").int ?? 0
        }
        #expect(running == 0, "no claimed job is left behind")
        #expect(try await queue.depth().total > 0, "it stopped claiming before the queue was empty")
        let successor = try await cluster.startWorker()
        let deadline = ContinuousClock.now + .seconds(20)
        while try await queue.depth().total > 0 && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(200)) }
        #expect(try await queue.stats()["completed"] == ids.count)
        #expect(try await queue.stats()["reclaimed"] == nil, "nothing had to be reclaimed")
        _ = successor
    }

    @Test func deferralSettingsAreValidatedAndShownFlatInTheKeyRecord() async throws {
        let cluster = try await Cluster()
        let create = { (body: String) in try await HTTP.json("POST", "\(cluster.url)/v1/keys", key: cluster.adminKey, body) }
        let queued = try await create(#"{"name":"q","scopes":["predict"],"overflow":"queue","max_queue_delay":30,"max_depth":50}"#)
        #expect(queued.status == 201)
        #expect(queued.json?["overflow"] as? String == "queue" && queued.json?["max_queue_delay"] as? Double == 30)
        #expect(queued.json?["max_depth"] as? Int == 50 && queued.json?["max_delay"] == nil)
        let delayed = try await create(#"{"name":"d","scopes":["predict"],"overflow":"delay"}"#)
        #expect(delayed.json?["max_delay"] as? Double == 1 && delayed.json?["max_depth"] as? Int == 1000, "defaults are shown")
        let rejecting = try await create(#"{"name":"r","scopes":["predict"]}"#)
        #expect(rejecting.json?["overflow"] as? String == "reject" && rejecting.json?["max_delay"] == nil)
        for (body, pointer) in [
            (#"{"name":"x","scopes":["predict"],"max_delay":2}"#, "/max_delay"),
            (#"{"name":"x","scopes":["predict"],"overflow":"delay","max_delay":0}"#, "/max_delay"),
            (#"{"name":"x","scopes":["predict"],"overflow":"delay","max_delay":31}"#, "/max_delay"),
            (#"{"name":"x","scopes":["predict"],"overflow":"queue","max_queue_delay":-1}"#, "/max_queue_delay"),
            (#"{"name":"x","scopes":["predict"],"overflow":"queue","max_depth":0}"#, "/max_depth"),
            (#"{"name":"x","scopes":["predict"],"overflow":"later"}"#, "/overflow"),
        ] {
            let refused = try await create(body)
            let pointers = (refused.json?["errors"] as? [[String: Any]])?.compactMap { $0["pointer"] as? String } ?? []
            #expect(refused.status == 422 && pointers.contains(pointer), "\(body) → \(refused.status) \(pointers)")
        }
    }

    // MARK: - Helpers

    /// `count` predictions from 10 concurrent clients, alternating replicas.
    static func concurrentPredictions(_ count: Int, cluster: Cluster, key: String) async throws -> [HTTP.Response] {
        try await withThrowingTaskGroup(of: [HTTP.Response].self) { group in
            for client in 0..<10 {
                group.addTask {
                    var responses: [HTTP.Response] = []
                    for index in stride(from: client, to: count, by: 10) {
                        let replica = cluster.replicas[index % cluster.replicas.count]
                        responses.append(try await HTTP.json("POST", "\(replica.baseURL)/v1/predict", key: key, Cluster.setosa))
                    }
                    return responses
                }
            }
            return try await group.reduce(into: []) { $0 += $1 }
        }
    }

    /// `count` sequential requests `spacing` apart: (status, seconds taken).
    static func timedRequests(_ count: Int, cluster: Cluster, key: String, spacing: Duration) async throws -> [(Int, Double)] {
        var results: [(Int, Double)] = []
        for _ in 0..<count {
            let started = ContinuousClock.now
            let response = try await HTTP.json("POST", "\(cluster.url)/v1/predict", key: key, Cluster.setosa)
            results.append((response.status, (ContinuousClock.now - started).seconds))
            try await Task.sleep(for: spacing)
        }
        return results
    }

    /// An RFC 3339 time with fractional seconds, as seconds since the epoch.
    static func seconds(_ value: Any?) -> Double {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return (value as? String).flatMap { formatter.date(from: $0) }?.timeIntervalSince1970 ?? .nan
    }
}
