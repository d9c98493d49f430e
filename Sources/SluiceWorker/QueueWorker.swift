import Foundation
import Logging
import ServiceLifecycle
import SluiceModel
import SluiceQueue
import SluiceRedis
import Tracing

/// Runs queued predictions when their slot comes: `sluice worker`.
///
/// Any number of workers may run, and any may die at any moment: a job claimed by a worker that
/// vanished is reclaimed by another after the visibility timeout, and a job that runs twice still
/// has its result written once (``PartitionedJobQueue/complete(_:_:resultLifetime:worker:)``). On graceful
/// shutdown (SIGTERM) the worker stops claiming, finishes the jobs it holds, and returns.
public final class QueueWorker: Service, Sendable {
    public struct Configuration: Sendable {
        /// Recorded on every job it claims: `<host>-<pid>` unless set.
        public var name = "\(ProcessInfo.processInfo.hostName)-\(ProcessInfo.processInfo.processIdentifier)"
        /// The most jobs claimed at once.
        public var batchSize = 32
        /// A claimed job not completed within this is given to another worker.
        public var visibilityTimeout: Duration = .seconds(30)
        /// How long a result stays readable.
        public var resultLifetime: Duration = .seconds(3600)
        /// The longest the worker sleeps between claims when nothing is due (it wakes earlier for
        /// the next known slot).
        public var idlePoll: Duration = .milliseconds(100)

        public init() {}
    }

    let queue: PartitionedJobQueue
    let models: ModelHolder
    let configuration: Configuration
    let metrics: WorkerMetrics
    private let logger: Logger

    public init(queue: PartitionedJobQueue, models: ModelHolder, configuration: Configuration, metrics: WorkerMetrics, logger: Logger) {
        self.queue = queue
        self.models = models
        self.configuration = configuration
        self.metrics = metrics
        self.logger = logger
    }

    public func run() async throws {
        logger.info("worker started", metadata: ["worker": "\(configuration.name)"])
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.models.run() }
            group.addTask { await self.watchDepth() }
            await claimUntilShutdown()
            group.cancelAll()
        }
        logger.info("worker stopped: no job in hand", metadata: ["worker": "\(configuration.name)"])
    }

    /// Claims and runs due jobs until graceful shutdown; a claimed batch is finished, unless Redis
    /// is full (then its remaining jobs are left to be reclaimed after the visibility timeout).
    /// Consecutive failures back off from 250 ms to 8 s, so a broken or full Redis is not hammered
    /// and the worker stays responsive (health, metrics, SIGTERM) meanwhile.
    private func claimUntilShutdown() async {
        var failures = 0
        var storeFull = false
        // Kept until a claim answers: a claim whose reply was lost is retried under the same token
        // and hands back the jobs it took, instead of leaving them unowned for the visibility timeout.
        var token = Self.newClaimToken()
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            guard let model = models.current else {
                await pause(.milliseconds(250))
                continue
            }
            do {
                let claim = try await queue.claim(
                    worker: configuration.name, count: configuration.batchSize, visibility: configuration.visibilityTimeout, token: token)
                token = Self.newClaimToken()
                if claim.reclaimed > 0 {
                    metrics.reclaimed.increment(by: Int64(claim.reclaimed))
                    logger.warning("reclaimed jobs whose worker missed the visibility timeout", metadata: ["jobs": "\(claim.reclaimed)"])
                }
                for job in claim.jobs {
                    try await run(job, model: model, startedAt: claim.now)
                }
                // Redis answers again; but only a stored outcome shows that it has room again.
                if !storeFull || !claim.jobs.isEmpty {
                    failures = 0
                    storeFull = false
                }
                if claim.jobs.count < configuration.batchSize {
                    // Sleep until the next known slot, or the idle poll, whichever is sooner.
                    let untilNext = claim.nextDue.map { Duration.microseconds(max(0, $0 - claim.now)) } ?? configuration.idlePoll
                    await pause(min(untilNext, configuration.idlePoll))
                }
            } catch {
                failures += 1
                let backoff = Duration.milliseconds(250 * (1 << min(failures - 1, 5)))
                let metadata: Logger.Metadata = ["error": "\(error)", "retry_in_ms": "\(backoff / .milliseconds(1))"]
                storeFull = error is StoreFull
                if storeFull {
                    logger.error(
                        "Redis is out of memory (maxmemory reached, noeviction): job outcomes cannot be stored; the unfinished jobs are retried after the visibility timeout once memory is freed or maxmemory raised",
                        metadata: metadata)
                } else {
                    metrics.redisErrors.increment()
                    logger.error("claiming jobs failed; backing off", metadata: metadata)
                }
                await pause(backoff)
            }
        }
    }

    private static func newClaimToken() -> String {
        String(UInt64.random(in: .min ... .max), radix: 16) + String(UInt64.random(in: .min ... .max), radix: 16)
    }

    /// Redis refused to store an outcome for lack of memory: stop running the batch.
    private struct StoreFull: Error, CustomStringConvertible {
        let cause: QueueError
        var description: String { "\(cause)" }
    }

    private func run(_ job: Job, model: ModelArtifact, startedAt: Int64) async throws(StoreFull) {
        metrics.lag.record(.microseconds(max(0, startedAt - job.notBefore)))
        let prediction = PredictionJob.decode(job.input, width: model.features.count)
        // The run joins the trace of the request that queued the job (its stored traceparent).
        do {
            try await withSpan("job", context: prediction?.traceContext ?? .topLevel, ofKind: .consumer) { span in
                if span.isRecording {
                    span.attributes["sluice.job_id"] = job.id.rawValue
                    span.attributes["sluice.queue_lag_ms"] = Int(max(0, startedAt - job.notBefore) / 1000)
                }
                try await finish(job, prediction: prediction, model: model)
            }
        } catch let error as StoreFull {
            throw error
        } catch {
            // withSpan rethrows what finish throws, which is only StoreFull.
            logger.error("unexpected error running a job", metadata: ["job": "\(job.id)", "error": "\(error)"])
        }
    }

    private func finish(_ job: Job, prediction: PredictionJob?, model: ModelArtifact) async throws(StoreFull) {
        let outcome: JobQueue.Outcome
        if let prediction {
            outcome = .succeeded(result: model.predictionJSON(for: prediction.rows, output: prediction.output))
        } else {
            outcome = .failed(reason: "the queued input does not fit model version \(model.version)")
        }
        // Retry until the outcome is stored (or the job is someone else's after the visibility
        // timeout, which the idempotent completion makes harmless).
        let deadline = ContinuousClock.now + configuration.visibilityTimeout
        while true {
            do {
                let written = try await queue.complete(job, outcome, resultLifetime: configuration.resultLifetime, worker: configuration.name)
                // Counted only when this worker's outcome is the one stored.
                if written, case .failed = outcome { metrics.failed.increment() } else if written { metrics.completed.increment() }
                if !written { logger.info("job already finished elsewhere", metadata: ["job": "\(job.id)"]) }
                return
            } catch {
                metrics.redisErrors.increment()
                // A full Redis will not take the outcome in 100 ms either: back off instead.
                if error.redisCause?.isOutOfMemory == true { throw StoreFull(cause: error) }
                guard ContinuousClock.now < deadline else {
                    logger.error("could not store a job's outcome; it will be reclaimed", metadata: ["job": "\(job.id)", "error": "\(error)"])
                    return
                }
                try? await Task.sleep(for: .milliseconds(100))
            }
        }
    }

    /// Refreshes the depth gauges every second.
    private func watchDepth() async {
        while !Task.isCancelled {
            do {
                let depth = try await queue.depth()
                metrics.recordDepth(total: depth.total, perKey: depth.perKey)
            } catch {
                metrics.redisErrors.increment()
                logger.warning("reading the queue depth failed", metadata: ["error": "\(error)"])
            }
            try? await Task.sleep(for: .seconds(1))
        }
    }

    /// Sleeps, waking early for graceful shutdown.
    private func pause(_ duration: Duration) async {
        try? await cancelWhenGracefulShutdown { try await Task.sleep(for: duration) }
    }
}
