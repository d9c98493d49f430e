import SluiceCore
import SluiceRedis
import Synchronization

/// The job queue as Sluice runs it: 16 ``JobQueue`` partitions (`sluice:{jobs:0}` …
/// `sluice:{jobs:15}`), each one hash tag and so one Redis Cluster slot, so that no single master
/// holds every job while every queue script stays atomic within its slot.
///
/// A job lives in the partition of its API key (FNV-1a of the key id), so a key's `max_depth` is
/// counted in one place and stays exact, and a job is found from its id and its key. Workers
/// claim across partitions: one pipelined look at every partition's earliest slot and earliest
/// visibility deadline, then claims from those with work, starting at a rotating partition so
/// none is starved. The single queue of earlier versions (`sluice:{jobs}`) is drained as one more
/// partition: jobs queued before an upgrade still run, and are still found.
public struct PartitionedJobQueue: Sendable {
    public static let partitionCount = 16

    public let client: any RedisCommands
    /// The partitions new jobs go to.
    let partitions: [JobQueue]
    /// Where jobs queued by earlier versions wait: claimed and looked up, never written.
    let legacy: JobQueue
    private let cursor = Cursor()

    public init(client: any RedisCommands) {
        self.client = client
        self.partitions = (0..<Self.partitionCount).map { JobQueue(client: client, namespace: Keyspace.jobPartition($0)) }
        self.legacy = JobQueue(client: client, namespace: Keyspace.legacyJobs)
    }

    /// The partition of an API key's jobs.
    public func partition(of keyID: String) -> JobQueue {
        var hash: UInt32 = 2_166_136_261
        for byte in keyID.utf8 { hash = (hash ^ UInt32(byte)) &* 16_777_619 }
        return partitions[Int(hash % UInt32(partitions.count))]
    }

    private var all: [JobQueue] { partitions + [legacy] }

    public func enqueue(_ id: JobID, keyID: String, input: String, notBefore: Int64, maxDepth: Int) async throws(QueueError) -> Int? {
        try await partition(of: keyID).enqueue(id, keyID: keyID, input: input, notBefore: notBefore, maxDepth: maxDepth)
    }

    /// The job `id` of the key `keyID`, or `nil`.
    public func job(_ id: JobID, keyID: String) async throws(QueueError) -> Job? {
        if let job = try await partition(of: keyID).job(id) { return job }
        return try await legacy.job(id)
    }

    /// Writes the outcome of a claimed job, in the partition it was claimed from.
    @discardableResult
    public func complete(_ job: Job, _ outcome: JobQueue.Outcome, resultLifetime: Duration, worker: String) async throws(QueueError) -> Bool {
        if try await partition(of: job.keyID).complete(job.id, outcome, resultLifetime: resultLifetime, worker: worker) { return true }
        return try await legacy.complete(job.id, outcome, resultLifetime: resultLifetime, worker: worker)
    }

    /// Claims up to `count` due jobs across the partitions (see ``JobQueue/claim(worker:count:visibility:token:)``
    /// for `token`: each partition is claimed under its own derivation of it, so a retried claim
    /// hands back whatever the lost one took, wherever).
    public func claim(worker: String, count: Int, visibility: Duration, token: String) async throws(QueueError) -> JobQueue.Claim {
        let queues = all
        let heads = try await heads(of: queues)
        let start = cursor.next(queues.count)
        var result = JobQueue.Claim(now: 0, nextDue: nil, reclaimed: 0, jobs: [])
        for offset in 0..<queues.count where result.jobs.count < count {
            let index = (start + offset) % queues.count
            guard heads[index].hasWork else {
                result.nextDue = [result.nextDue, heads[index].earliestSlot].compactMap { $0 }.min()
                continue
            }
            let claim = try await queues[index].claim(worker: worker, count: count - result.jobs.count, visibility: visibility, token: "\(token)-\(index)")
            result.now = max(result.now, claim.now)
            result.reclaimed += claim.reclaimed
            result.jobs += claim.jobs
            result.nextDue = [result.nextDue, claim.nextDue].compactMap { $0 }.min()
        }
        return result
    }

    /// Per partition: anything queued or running at all (so the claim script runs there and
    /// reclaims what a dead worker left), and the earliest slot.
    private struct Head {
        var hasWork: Bool
        var earliestSlot: Int64?
    }

    private func heads(of queues: [JobQueue]) async throws(QueueError) -> [Head] {
        do {
            return try await withThrowingTaskGroup(of: (Int, Head).self) { group in
                for (index, queue) in queues.enumerated() {
                    group.addTask {
                        async let due = queue.client.send(RedisCommand("ZRANGE", queue.dueKey, "0", "0", "WITHSCORES"))
                        async let running = queue.client.send(RedisCommand("ZCARD", queue.runningKey))
                        let (first, busy) = try await (due, running)
                        let slot = first.array.flatMap { $0.count == 2 ? $0[1].int.map(Int64.init) : nil }
                        return (index, Head(hasWork: slot != nil || (busy.int ?? 0) > 0, earliestSlot: slot))
                    }
                }
                var heads = Array(repeating: Head(hasWork: false), count: queues.count)
                for try await (index, head) in group { heads[index] = head }
                return heads
            }
        } catch let error as RedisError {
            throw .redis(error)
        } catch {
            throw .unexpectedReply("\(error)")
        }
    }

    /// Jobs pending in all, and per key id, over every partition.
    public func depth() async throws(QueueError) -> (total: Int, perKey: [String: Int]) {
        var perKey: [String: Int] = [:]
        for queue in all { perKey.merge(try await queue.depth().perKey, uniquingKeysWith: +) }
        return (perKey.values.reduce(0, +), perKey)
    }

    /// Totals over every worker and partition: `completed`, `failed`, `reclaimed`.
    public func stats() async throws(QueueError) -> [String: Int] {
        var stats: [String: Int] = [:]
        for queue in all { stats.merge(try await queue.stats(), uniquingKeysWith: +) }
        return stats
    }
}

/// Where the next claim starts, so that every partition gets its turn first.
private final class Cursor: Sendable {
    private let value = Atomic<Int>(0)
    func next(_ count: Int) -> Int { value.wrappingAdd(1, ordering: .relaxed).oldValue % count }
}
