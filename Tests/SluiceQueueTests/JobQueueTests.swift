import Foundation
import SluiceLimiter
import SluiceQueue
import SluiceRedis
import SluiceTestSupport
import Testing

/// lua/queue_*.lua through ``JobQueue``, against a real redis-server (one per suite instance, so
/// that the queue's fixed keys are not shared between tests).
@Suite("JobQueue against a real redis-server")
struct JobQueueTests {
    let redis: RedisServer
    let queue: JobQueue

    init() throws {
        redis = try RedisServer()
        queue = JobQueue(client: redis.client())
    }

    private func redisNow() async throws -> Int64 {
        let time = try #require(try await queue.client.send("TIME").array)
        return Int64(time[0].int!) * 1_000_000 + Int64(time[1].int!)
    }

    @Test func claimsOnlyDueJobsInSlotOrder() async throws {
        let now = try await redisNow()
        let late = JobID.generate(), early = JobID.generate(), future = JobID.generate()
        // Enqueued out of slot order, as different keys' jobs arrive.
        #expect(try await queue.enqueue(late, keyID: "a", input: "[[1]]", notBefore: now - 1_000, maxDepth: 10) == 1)
        #expect(try await queue.enqueue(early, keyID: "b", input: "[[2]]", notBefore: now - 2_000, maxDepth: 10) == 1)
        #expect(try await queue.enqueue(future, keyID: "a", input: "[[3]]", notBefore: now + 600_000, maxDepth: 10) == 2)

        let claim = try await queue.claim(worker: "w1", count: 10, visibility: .seconds(30), token: .fresh)
        #expect(claim.jobs.map(\.id) == [early, late])
        #expect(claim.jobs.map(\.input) == ["[[2]]", "[[1]]"])
        #expect(claim.nextDue == now + 600_000, "the worker learns when to come back")
        #expect(try await queue.claim(worker: "w1", count: 10, visibility: .seconds(30), token: .fresh).jobs.isEmpty, "nothing before its slot")
        try await Task.sleep(for: .milliseconds(650))
        let later = try await queue.claim(worker: "w1", count: 10, visibility: .seconds(30), token: .fresh)
        #expect(later.jobs.map(\.id) == [future])
        #expect(later.now >= now + 600_000, "started at or after not_before")
    }

    /// A claim whose reply was lost is sent again under the same token: it hands back the jobs it
    /// took (attempts unchanged) and claims nothing new; another token claims the rest.
    @Test func aRetriedClaimIsIdempotent() async throws {
        let now = try await redisNow()
        let ids = (0..<3).map { _ in JobID.generate() }
        for (offset, id) in ids.enumerated() {
            _ = try await queue.enqueue(id, keyID: "k", input: "[]", notBefore: now - 1_000 + Int64(offset), maxDepth: 10)
        }
        let lost = try await queue.claim(worker: "w1", count: 2, visibility: .seconds(30), token: "t1")
        #expect(lost.jobs.map(\.id) == Array(ids.prefix(2)))
        let retried = try await queue.claim(worker: "w1", count: 2, visibility: .seconds(30), token: "t1")
        #expect(retried.jobs.map(\.id) == lost.jobs.map(\.id), "the same jobs, not the next ones")
        #expect(retried.jobs.map(\.attempts) == [1, 1])
        #expect(retried.jobs.map(\.input) == ["[]", "[]"] && retried.jobs.map(\.keyID) == ["k", "k"])
        let other = try await queue.claim(worker: "w2", count: 5, visibility: .seconds(30), token: "t2")
        #expect(other.jobs.map(\.id) == [ids[2]])
        // A finished job is not handed back.
        try await queue.complete(ids[0], .succeeded(result: "{}"), resultLifetime: .seconds(60), worker: "w1")
        #expect(try await queue.claim(worker: "w1", count: 2, visibility: .seconds(30), token: "t1").jobs.map(\.id) == [ids[1]])
    }

    /// The claim script touches only keys it is given (Redis Cluster routes by declared keys): a
    /// reading of the script, since a single Redis does not enforce it (the old script built job
    /// keys from a prefix argument).
    @Test func claimDeclaresEveryKeyItTouches() async throws {
        let script = try String(contentsOfFile: URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../lua/queue_claim.lua").path, encoding: .utf8)
        #expect(!script.contains("ARGV[1] .."), "no key built from arguments")
        #expect(!script.contains("'KEYS'") && !script.contains("redis.call('KEYS'"))
        for line in script.split(separator: "\n") where line.contains("redis.call(") {
            // Every call's key is KEYS[…] or a job key looked up from KEYS (job_key[…]).
            if let key = line.firstMatch(of: /redis\.call\('[A-Z]+', ([^,)]+)/)?.1 {
                #expect(key.hasPrefix("KEYS[") || key.hasPrefix("job_key[") || key == "key", "\(line)")
            }
        }
    }

    /// Found by `scripts/fuzz lua`: arguments Lua's tonumber takes but Redis does not (" 1") were
    /// written after a first write succeeded, and a missing key was a Lua runtime error. Now each
    /// script checks its whole contract first, and writes only values it parsed.
    @Test func scriptsWriteOnlyWhatTheyParsedAndCheckTheirKeys() async throws {
        let source = { (name: String) in
            try String(contentsOfFile: URL(fileURLWithPath: #filePath).deletingLastPathComponent()
                .appendingPathComponent("../../lua/\(name).lua").path, encoding: .utf8)
        }
        let client = queue.client
        let id = JobID.generate().rawValue
        let enqueued = try await client.send(RedisCommand(
            "EVAL", [try source("queue_enqueue"), "3", "{q}:due", "{q}:depth", "{q}:job", id, "key", "[]", " 1", "10"]))
        #expect(enqueued.array?.first?.int == 1)
        #expect(try await client.send("ZSCORE", "{q}:due", id).string == "1", "the slot as parsed, not as sent")
        #expect(try await client.send("HGET", "{q}:job", "not_before").string == "1")
        for (name, keys) in [("lock_release", 0), ("queue_complete", 2), ("queue_enqueue", 1), ("queue_claim", 3)] {
            do {
                _ = try await client.send(RedisCommand("EVAL", [try source(name), String(keys)] + (0..<keys).map { "{q}:x\($0)" } + ["a"]))
                Issue.record("\(name) with \(keys) keys must be refused")
            } catch {
                guard case .server(let message) = error as? RedisError else { throw error }
                #expect(message.hasPrefix("ERR lock: ") || message.hasPrefix("ERR queue: "), "\(name): \(message)")
            }
        }
    }

    @Test func maxDepthBoundsEachKeySeparately() async throws {
        let now = try await redisNow()
        for expected in 1...3 {
            #expect(try await queue.enqueue(.generate(), keyID: "full", input: "[]", notBefore: now, maxDepth: 3) == expected)
        }
        #expect(try await queue.enqueue(.generate(), keyID: "full", input: "[]", notBefore: now, maxDepth: 3) == nil)
        #expect(try await queue.enqueue(.generate(), keyID: "other", input: "[]", notBefore: now, maxDepth: 3) == 1)
        let depth = try await queue.depth()
        #expect(depth.total == 4 && depth.perKey == ["full": 3, "other": 1])
        // Completing one frees one place.
        let claimed = try await queue.claim(worker: "w", count: 1, visibility: .seconds(30), token: .fresh).jobs
        try await queue.complete(claimed[0].id, .succeeded(result: "{}"), resultLifetime: .seconds(60), worker: "w")
        #expect(try await queue.depth().total == 3)
    }

    @Test func anOutcomeIsWrittenOnceEvenWhenAJobRunsTwice() async throws {
        let id = JobID.generate()
        _ = try await queue.enqueue(id, keyID: "k", input: "[[1]]", notBefore: try await redisNow(), maxDepth: 5)
        // Worker 1 claims and stalls past the visibility timeout; worker 2 reclaims and runs it.
        let first = try await queue.claim(worker: "w1", count: 5, visibility: .milliseconds(100), token: .fresh)
        #expect(first.jobs.map(\.id) == [id] && first.jobs[0].attempts == 1)
        try await Task.sleep(for: .milliseconds(150))
        let second = try await queue.claim(worker: "w2", count: 5, visibility: .seconds(30), token: .fresh)
        #expect(second.reclaimed == 1)
        #expect(second.jobs.map(\.id) == [id] && second.jobs[0].attempts == 2)

        #expect(try await queue.complete(id, .succeeded(result: #"{"by":"w2"}"#), resultLifetime: .seconds(60), worker: "w2"))
        #expect(try await !queue.complete(id, .succeeded(result: #"{"by":"w1"}"#), resultLifetime: .seconds(60), worker: "w1"))
        let job = try #require(try await queue.job(id))
        #expect(job.status == .succeeded && job.result == #"{"by":"w2"}"#)
        #expect(try await queue.stats() == ["completed": 1, "reclaimed": 1])
        #expect(try await queue.depth().total == 0, "the depth is released once")
        #expect(try await queue.claim(worker: "w3", count: 5, visibility: .seconds(30), token: .fresh).jobs.isEmpty)
        let ttl = try await queue.client.send("TTL", "sluice:{jobs}:job:\(id)")
        #expect((50...60).contains(ttl.int ?? 0), "results expire")
    }

    @Test func aFinishedJobLeftInTheQueueIsNeverRunAgain() async throws {
        let now = try await redisNow()
        let id = JobID.generate(), earlier = JobID.generate()
        _ = try await queue.enqueue(id, keyID: "k", input: "[[1]]", notBefore: now, maxDepth: 5)
        _ = try await queue.claim(worker: "w1", count: 5, visibility: .milliseconds(50), token: .fresh)
        try await Task.sleep(for: .milliseconds(80))
        // w2 reclaims the stalled job (back in the queue) but takes an earlier one first …
        _ = try await queue.enqueue(earlier, keyID: "k", input: "[[2]]", notBefore: now - 10_000_000, maxDepth: 5)
        let claim = try await queue.claim(worker: "w2", count: 1, visibility: .seconds(30), token: .fresh)
        #expect(claim.reclaimed == 1 && claim.jobs.map(\.id) == [earlier])
        // … and then the stalled first run completes after all: the queued copy is dropped.
        #expect(try await queue.complete(id, .succeeded(result: "{}"), resultLifetime: .seconds(60), worker: "w1"))
        #expect(try await queue.claim(worker: "w3", count: 5, visibility: .seconds(30), token: .fresh).jobs.isEmpty)
        #expect(try await queue.job(id)?.status == .succeeded)
    }

    @Test func jobKeysShareOneHashTag() async throws {
        let id = JobID.generate()
        _ = try await queue.enqueue(id, keyID: "k", input: "[]", notBefore: 0, maxDepth: 5)
        let keys = try #require(try await queue.client.send("KEYS", "sluice:*").array).compactMap(\.string)
        #expect(!keys.isEmpty && keys.allSatisfy { $0.hasPrefix("sluice:{jobs}:") }, "\(keys)")
    }

    @Test func invalidArgumentsWriteNothing() async throws {
        for (notBefore, depth) in [(Int64(-1), 5), (0, 0)] {
            await #expect(throws: QueueError.self) {
                _ = try await queue.enqueue(.generate(), keyID: "k", input: "[]", notBefore: notBefore, maxDepth: depth)
            }
        }
        let id = JobID.generate()
        _ = try await queue.enqueue(id, keyID: "k", input: "[]", notBefore: 0, maxDepth: 5)
        await #expect(throws: QueueError.self) {
            _ = try await queue.enqueue(id, keyID: "k", input: "[]", notBefore: 0, maxDepth: 5)
        }
        #expect(try await queue.depth().perKey == ["k": 1])
    }

    @Test func jobIDsAreUnguessableAndStrictlyFormatted() {
        let ids = Set((0..<1000).map { _ in JobID.generate() })
        #expect(ids.count == 1000)
        #expect(ids.allSatisfy { $0.rawValue.count == 32 })
        for bad in ["", "../etc", String(repeating: "A", count: 32), String(repeating: "a", count: 31), "sluice:{jobs}:due"] {
            #expect(JobID(bad) == nil)
        }
    }
}

extension String {
    /// A claim token not used before.
    static var fresh: String { UUID().uuidString }
}

extension JobQueueTests {
    /// The partitioned queue: jobs of many keys spread over the 16 partitions, each key's depth
    /// counted in its own partition, claims that reach every partition, and a job left in the
    /// single queue of earlier versions still claimed, found and completed.
    @Test func partitionsSpreadJobsAndDrainTheOldQueue() async throws {
        let partitioned = PartitionedJobQueue(client: queue.client)
        let now = try await redisNow()
        let keys = (0..<40).map { "key\($0)" }
        var ids: [JobID: String] = [:]
        for key in keys {
            let id = JobID.generate()
            #expect(try await partitioned.enqueue(id, keyID: key, input: "[]", notBefore: now - 1_000, maxDepth: 1) == 1)
            #expect(try await partitioned.enqueue(.generate(), keyID: key, input: "[]", notBefore: now, maxDepth: 1) == nil, "max_depth exact")
            ids[id] = key
        }
        let used = try await queue.client.send("KEYS", "sluice:{jobs:*}:due").array?.count ?? 0
        #expect(used >= 12, "40 keys over \(used) of 16 partitions")
        let legacyID = JobID.generate()
        _ = try await queue.enqueue(legacyID, keyID: "old", input: "[]", notBefore: now - 1_000, maxDepth: 5)
        ids[legacyID] = "old"

        var claimed: [Job] = []
        for round in 0..<10 where claimed.count < ids.count {
            claimed += try await partitioned.claim(worker: "w", count: 8, visibility: .seconds(30), token: "t\(round)").jobs
        }
        #expect(Set(claimed.map(\.id)) == Set(ids.keys), "every job claimed once, the old queue's too")
        for job in claimed { #expect(try await partitioned.complete(job, .succeeded(result: "{}"), resultLifetime: .seconds(60), worker: "w")) }
        #expect(try await partitioned.job(legacyID, keyID: "old")?.status == .succeeded)
        #expect(try await partitioned.stats()["completed"] == ids.count)
        #expect(try await partitioned.depth().total == 0)
    }
}
