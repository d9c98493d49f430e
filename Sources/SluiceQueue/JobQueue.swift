import SluiceCore
import SluiceRedis

/// A durable, rate-aware queue of deferred jobs in Redis, shared by replicas (which enqueue) and
/// workers (which claim and complete).
///
/// A reliable delayed queue rather than a Stream: jobs are ordered by their reserved slot
/// (`not_before`), which is not the order they arrive in across keys, and a worker must never
/// start one early. Claimed jobs sit in a `running` set with a visibility deadline; a job whose
/// worker died is reclaimed by the next claim after that deadline. Outcomes are written once.
///
/// Every key shares the hash tag `{jobs}` (`sluice:{jobs}:due`, `sluice:{jobs}:job:<id>`, …), so
/// the whole queue is one Redis Cluster slot and every script stays atomic there. The scripts are
/// `lua/queue_*.lua`. Durability is Redis' own: run it with `appendonly yes` (see the README).
public struct JobQueue: Sendable {
    static let enqueueScript = RedisScript(name: "queue_enqueue", source: PackageResources.queue_enqueue_lua)
    static let claimScript = RedisScript(name: "queue_claim", source: PackageResources.queue_claim_lua)
    static let completeScript = RedisScript(name: "queue_complete", source: PackageResources.queue_complete_lua)

    public let client: RedisClient
    public let namespace: String

    public init(client: RedisClient, namespace: String = "sluice:{jobs}") {
        self.client = client
        self.namespace = namespace
    }

    var dueKey: String { "\(namespace):due" }
    var runningKey: String { "\(namespace):running" }
    var depthKey: String { "\(namespace):depth" }
    var statsKey: String { "\(namespace):stats" }
    var jobPrefix: String { "\(namespace):job:" }
    func jobKey(_ id: JobID) -> String { jobPrefix + id.rawValue }

    /// Queues a job for `keyID` at its reserved slot, unless the key already has `maxDepth` jobs
    /// pending. Returns the key's depth including this job, or `nil` when its queue is full.
    public func enqueue(_ id: JobID, keyID: String, input: String, notBefore: Int64, maxDepth: Int) async throws(QueueError) -> Int? {
        let reply = try await run(
            Self.enqueueScript, keys: [dueKey, depthKey, jobKey(id)],
            arguments: [id.rawValue, keyID, input, String(notBefore), String(maxDepth)])
        guard let fields = reply.array, fields.count == 2, let queued = fields[0].int, let depth = fields[1].int else {
            throw .unexpectedReply("\(reply)")
        }
        return queued == 1 ? depth : nil
    }

    /// What one claim brought back.
    public struct Claim: Sendable {
        /// Redis time of the claim (µs): every claimed job's start time.
        public var now: Int64
        /// The earliest slot still queued, if any: when to claim next.
        public var nextDue: Int64?
        /// Jobs moved back to the queue because their worker missed the visibility deadline.
        public var reclaimed: Int
        public var jobs: [Job]
    }

    /// How many running jobs one claim looks at for reclaiming (those with the earliest deadlines).
    static let reclaimCandidates = 16

    func claimKey(_ token: String) -> String { "\(namespace):claim:\(token)" }

    /// Claims up to `count` jobs whose slot has come, and first reclaims any job whose worker
    /// missed its visibility deadline.
    ///
    /// `token` names this claim: sent again after a claim whose reply was lost (a timeout, a broken
    /// connection), it returns the jobs that claim took — still running for `worker` — and claims
    /// nothing new, so retrying is safe. Use a new token once a claim has answered.
    ///
    /// Two steps, so that the script declares every key it touches: one pipelined read of the
    /// candidates (the token's jobs, the earliest deadlines, the earliest slots), then
    /// `queue_claim.lua`, which re-checks each on Redis' clock.
    public func claim(worker: String, count: Int, visibility: Duration, token: String) async throws(QueueError) -> Claim {
        let micros = max(1, visibility.microseconds)
        async let previous = send(RedisCommand("LRANGE", claimKey(token), "0", "-1"))
        async let expiring = send(RedisCommand("ZRANGE", runningKey, "0", String(Self.reclaimCandidates - 1)))
        async let earliest = send(RedisCommand("ZRANGE", dueKey, "0", String(max(1, count) - 1)))
        let (retried, reclaimable, due): ([String], [String], [String])
        do {
            (retried, reclaimable, due) = try await (Self.ids(previous), Self.ids(expiring), Self.ids(earliest))
        } catch let error as QueueError {
            throw error
        } catch {
            throw .unexpectedReply("\(error)")
        }
        let candidates = reclaimable + retried + due
        let reply = try await run(
            Self.claimScript, keys: [dueKey, runningKey, statsKey, claimKey(token)] + candidates.map { jobPrefix + $0 },
            arguments: [String(count), String(micros), worker, String(reclaimable.count)] + candidates)
        guard let fields = reply.array, fields.count >= 3, (fields.count - 3) % 5 == 0,
            let now = fields[0].int.map(Int64.init), let next = fields[1].int.map(Int64.init), let reclaimed = fields[2].int
        else { throw .unexpectedReply("\(reply)") }
        var jobs: [Job] = []
        for base in stride(from: 3, to: fields.count, by: 5) {
            guard let id = fields[base].string.flatMap(JobID.init), let keyID = fields[base + 1].string,
                let input = fields[base + 2].string, let notBefore = fields[base + 3].int, let attempts = fields[base + 4].int
            else { throw .unexpectedReply("\(reply)") }
            jobs.append(
                Job(id: id, keyID: keyID, input: input, status: .running, notBefore: Int64(notBefore), createdAt: 0,
                    startedAt: now, attempts: attempts))
        }
        return Claim(now: now, nextDue: next < 0 ? nil : next, reclaimed: reclaimed, jobs: jobs)
    }

    private static func ids(_ reply: RedisReply) throws(QueueError) -> [String] {
        guard let items = reply.array else { throw .unexpectedReply("\(reply)") }
        return items.compactMap(\.string)
    }

    /// The outcome of a job the worker ran.
    public enum Outcome: Sendable {
        case succeeded(result: String)
        case failed(reason: String)
    }

    /// Writes a job's outcome, kept for `resultLifetime`. Returns false when an outcome was already
    /// written (the job ran twice) or the job is gone: idempotent by job id.
    @discardableResult
    public func complete(_ id: JobID, _ outcome: Outcome, resultLifetime: Duration, worker: String) async throws(QueueError) -> Bool {
        let (status, value) =
            switch outcome {
            case .succeeded(let result): ("succeeded", result)
            case .failed(let reason): ("failed", reason)
            }
        let reply = try await run(
            Self.completeScript, keys: [runningKey, depthKey, statsKey, jobKey(id)],
            arguments: [id.rawValue, status, value, String(max(1, resultLifetime.components.seconds)), worker])
        guard let written = reply.int else { throw .unexpectedReply("\(reply)") }
        return written == 1
    }

    /// A job, or `nil` when it never existed or its result expired.
    public func job(_ id: JobID) async throws(QueueError) -> Job? {
        let names = ["key_id", "input", "status", "not_before", "created_at", "started_at", "completed_at", "attempts", "result", "error"]
        let reply = try await send(RedisCommand("HMGET", [jobKey(id)] + names))
        guard let fields = reply.array, fields.count == names.count else { throw .unexpectedReply("\(reply)") }
        guard let keyID = fields[0].string, let status = fields[2].string.flatMap(Job.Status.init(rawValue:)),
            let notBefore = fields[3].int
        else { return nil }
        return Job(
            id: id, keyID: keyID, input: fields[1].string ?? "", status: status, notBefore: Int64(notBefore),
            createdAt: Int64(fields[4].int ?? 0), startedAt: fields[5].int.map(Int64.init), completedAt: fields[6].int.map(Int64.init),
            attempts: fields[7].int ?? 0, result: fields[8].string, error: fields[9].string)
    }

    /// Jobs pending (queued or running) in all, and per key id.
    public func depth() async throws(QueueError) -> (total: Int, perKey: [String: Int]) {
        let reply = try await send(RedisCommand("HGETALL", depthKey))
        guard let fields = reply.array, fields.count % 2 == 0 else { throw .unexpectedReply("\(reply)") }
        var perKey: [String: Int] = [:]
        for index in stride(from: 0, to: fields.count, by: 2) {
            if let key = fields[index].string, let depth = fields[index + 1].int { perKey[key] = depth }
        }
        return (perKey.values.reduce(0, +), perKey)
    }

    /// Totals over every worker: `completed`, `failed`, `reclaimed`.
    public func stats() async throws(QueueError) -> [String: Int] {
        let reply = try await send(RedisCommand("HGETALL", statsKey))
        guard let fields = reply.array, fields.count % 2 == 0 else { throw .unexpectedReply("\(reply)") }
        var stats: [String: Int] = [:]
        for index in stride(from: 0, to: fields.count, by: 2) {
            if let name = fields[index].string, let value = fields[index + 1].int { stats[name] = value }
        }
        return stats
    }

    private func run(_ script: RedisScript, keys: [String], arguments: [String]) async throws(QueueError) -> RedisReply {
        do {
            return try await client.evaluate(script, keys: keys, arguments: arguments)
        } catch {
            throw .redis(error)
        }
    }

    private func send(_ command: RedisCommand) async throws(QueueError) -> RedisReply {
        do {
            return try await client.send(command)
        } catch {
            throw .redis(error)
        }
    }
}
