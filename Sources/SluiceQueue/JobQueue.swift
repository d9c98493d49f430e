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
/// `lua/queue_*.lua`. Durability is Redis' own: run it with `appendonly yes` (see deploy/README.md).
public struct JobQueue: Sendable {
    static let enqueueScript = RedisScript(name: "queue_enqueue", source: PackageResources.queue_enqueue_lua)
    static let claimScript = RedisScript(name: "queue_claim", source: PackageResources.queue_claim_lua)
    static let completeScript = RedisScript(name: "queue_complete", source: PackageResources.queue_complete_lua)

    public let client: any RedisCommands
    public let namespace: String

    public init(client: any RedisCommands, namespace: String = Keyspace.legacyJobs) {
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
        return try Self.decoding(reply, of: "queue_enqueue") { fields throws(RedisError) in
            try fields.expect(2)
            let queued = try fields.int(), depth = try fields.int()
            return queued == 1 ? depth : nil
        }
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
        return try Self.decoding(reply, of: "queue_claim") { fields throws(RedisError) in
            try fields.expect(3, atLeast: true)
            guard (fields.remaining - 3) % 5 == 0 else { throw fields.mismatch("3 + 5 × jobs fields") }
            let now = try fields.int64(), next = try fields.int64(), reclaimed = try fields.int()
            var jobs: [Job] = []
            while fields.remaining > 0 {
                guard let id = JobID(try fields.string()) else { throw fields.mismatch("a job id at field \(fields.position - 1)") }
                let keyID = try fields.string(), input = try fields.string(), notBefore = try fields.int64(), attempts = try fields.int()
                jobs.append(
                    Job(id: id, keyID: keyID, input: input, status: .running, notBefore: notBefore, createdAt: 0, startedAt: now, attempts: attempts))
            }
            return Claim(now: now, nextDue: next < 0 ? nil : next, reclaimed: reclaimed, jobs: jobs)
        }
    }

    private static func ids(_ reply: RedisReply) throws(QueueError) -> [String] {
        try decoding(reply, of: "ZRANGE") { fields throws(RedisError) in
            var ids: [String] = []
            while fields.remaining > 0 { if let id = try fields.optionalString() { ids.append(id) } }
            return ids
        }
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
        guard let written = reply.int else { throw .unexpectedReply("queue_complete answered \(reply)") }
        return written == 1
    }

    /// A job, or `nil` when it never existed or its result expired.
    public func job(_ id: JobID) async throws(QueueError) -> Job? {
        let names = ["key_id", "input", "status", "not_before", "created_at", "started_at", "completed_at", "attempts", "result", "error"]
        let reply = try await send(RedisCommand("HMGET", [jobKey(id)] + names))
        return try Self.decoding(reply, of: "HMGET") { fields throws(RedisError) in
            try fields.expect(names.count)
            let keyID = try fields.optionalString(), input = try fields.optionalString()
            let status = try fields.optionalString().flatMap(Job.Status.init(rawValue:)), notBefore = try fields.optionalInt()
            let createdAt = try fields.optionalInt(), startedAt = try fields.optionalInt(), completedAt = try fields.optionalInt()
            let attempts = try fields.optionalInt(), result = try fields.optionalString(), error = try fields.optionalString()
            guard let keyID, let status, let notBefore else { return nil }
            return Job(
                id: id, keyID: keyID, input: input ?? "", status: status, notBefore: Int64(notBefore), createdAt: Int64(createdAt ?? 0),
                startedAt: startedAt.map(Int64.init), completedAt: completedAt.map(Int64.init), attempts: attempts ?? 0, result: result,
                error: error)
        }
    }

    /// Jobs pending (queued or running) in all, and per key id.
    public func depth() async throws(QueueError) -> (total: Int, perKey: [String: Int]) {
        let perKey = try await counters(depthKey)
        return (perKey.values.reduce(0, +), perKey)
    }

    /// Totals over every worker: `completed`, `failed`, `reclaimed`.
    public func stats() async throws(QueueError) -> [String: Int] {
        try await counters(statsKey)
    }

    /// A hash of integer counters, by field.
    private func counters(_ key: String) async throws(QueueError) -> [String: Int] {
        let reply = try await send(RedisCommand("HGETALL", key))
        return try Self.decoding(reply, of: "HGETALL") { fields throws(RedisError) in
            guard fields.remaining % 2 == 0 else { throw fields.mismatch("field-value pairs") }
            var counters: [String: Int] = [:]
            while fields.remaining > 0 {
                let name = try fields.optionalString(), value = try fields.optionalInt()
                if let name, let value { counters[name] = value }
            }
            return counters
        }
    }

    /// Decodes a reply's fields with `read`; a reply of the wrong shape is ``QueueError/unexpectedReply(_:)``.
    private static func decoding<T>(_ reply: RedisReply, of source: String, _ read: (inout ReplyFields) throws(RedisError) -> T) throws(QueueError) -> T {
        do throws(RedisError) {
            var fields = try ReplyFields(reply, of: source)
            return try read(&fields)
        } catch {
            throw .unexpectedReply("\(error)")
        }
    }

    private func run(_ script: RedisScript, keys: [String], arguments: [String]) async throws(QueueError) -> RedisReply {
        try await client.evaluate(script, keys: keys, arguments: arguments, failing: QueueError.self)
    }

    private func send(_ command: RedisCommand) async throws(QueueError) -> RedisReply {
        try await client.send(command, failing: QueueError.self)
    }
}
