import DequeModule
import Foundation
import Logging
import Synchronization

/// One Redis connection with automatic pipelining.
///
/// The hiredis context is owned by a dedicated thread. Callers put their command into a bounded,
/// lock-protected queue and suspend; the thread takes everything queued (up to
/// ``RedisConfiguration/maxBatch``), writes it in one go and reads all replies, so N concurrent
/// callers share one round trip. While a round trip is in flight the next batch accumulates.
///
/// Failure handling:
/// - a connection error fails the in-flight batch only (whether those commands ran is unknown);
/// - the thread then reconnects with backoff (25 ms doubling to 250 ms) while later commands wait,
///   each at most its command timeout, so a short Redis restart costs at most one batch;
/// - a connection the server closed while idle is detected before use and replaced silently;
/// - every command's deadline holds whatever the thread is blocked on: a timer fails queued
///   commands past it (while the thread waits on a hung batch or a reconnect). The batch in flight
///   keeps the full timeout as its read timeout: a timed-out read costs the connection, so a
///   shorter one would turn a brief Redis stall into a reconnect for everyone.
public final class RedisConnection: Sendable {
    /// A queued command. Its continuation is unchecked (measurably cheaper on this path); every
    /// `Pending` is finished exactly once: refused in `send`, answered or failed with its batch,
    /// expired in `failWaiting`, or failed with `.shutdown` when the thread ends.
    private struct Pending: Sendable {
        let command: RedisCommand
        let deadline: ContinuousClock.Instant
        let continuation: UnsafeContinuation<Result<RedisReply, RedisError>, Never>

        func finish(_ result: Result<RedisReply, RedisError>) {
            continuation.resume(returning: result)
        }
    }

    private struct Mailbox: ~Copyable {
        var queue: Deque<Pending> = []
        var threadIsWaiting = false
        var isClosed = false
        /// Why the last connection attempt failed, until one succeeds: what a command that
        /// expires meanwhile is told, rather than a bare timeout.
        var connectError: RedisError?
    }

    private let mailbox = Mutex(Mailbox())
    private let completedRoundTrips = Atomic<Int>(0)
    /// Signalled exactly once per transition of the thread from waiting to woken.
    private let wakeup = DispatchSemaphore(value: 0)
    private let configuration: RedisConfiguration
    private let logger: Logger
    /// Fails queued commands past their deadline every 1/20 of the command timeout (5–100 ms),
    /// so a caller waits at most its timeout plus that, never a hung batch plus a reconnect.
    private nonisolated(unsafe) let deadlineTimer: DispatchSourceTimer

    /// Starts the connection's thread; the connection itself is opened lazily by the first command.
    public init(configuration: RedisConfiguration, logger: Logger, name: String = "sluice-redis") {
        self.configuration = configuration
        self.logger = logger
        self.deadlineTimer = DispatchSource.makeTimerSource(queue: .global())
        let interval = min(max(configuration.commandTimeout / 20, .milliseconds(5)), .milliseconds(100))
        let milliseconds = Int(interval / .milliseconds(1))
        deadlineTimer.schedule(deadline: .now() + .milliseconds(milliseconds), repeating: .milliseconds(milliseconds), leeway: .milliseconds(max(1, milliseconds / 5)))
        deadlineTimer.setEventHandler { [weak self] in self?.failWaiting(with: nil, all: false) }
        deadlineTimer.resume()
        let thread = Thread { [self] in self.run() }
        thread.name = name
        thread.start()
    }

    deinit { deadlineTimer.cancel() }

    /// Round trips (batches written and read) so far; commands ÷ round trips is the pipelining depth.
    public var roundTrips: Int { completedRoundTrips.load(ordering: .relaxed) }

    /// Sends one command and waits for its reply.
    ///
    /// Error replies are thrown as ``RedisError/server(_:)``.
    public func send(_ command: RedisCommand) async throws(RedisError) -> RedisReply {
        let deadline = ContinuousClock.now + configuration.commandTimeout
        let result = await withUnsafeContinuation { (continuation: UnsafeContinuation<Result<RedisReply, RedisError>, Never>) in
            let pending = Pending(command: command, deadline: deadline, continuation: continuation)
            let outcome: (wake: Bool, refusal: RedisError?) = mailbox.withLock { box in
                if box.isClosed { return (false, .shutdown) }
                if box.queue.count >= configuration.maxQueued { return (false, .backPressure(queued: box.queue.count)) }
                box.queue.append(pending)
                let wake = box.threadIsWaiting
                box.threadIsWaiting = false
                return (wake, nil)
            }
            if let refusal = outcome.refusal {
                pending.finish(.failure(refusal))
            } else if outcome.wake {
                wakeup.signal()
            }
        }
        return try result.get()
    }

    /// Fails whatever is queued with ``RedisError/shutdown`` and stops the thread after the
    /// in-flight batch.
    public func close() {
        deadlineTimer.cancel()
        let wake = mailbox.withLock { box in
            box.isClosed = true
            defer { box.threadIsWaiting = false }
            return box.threadIsWaiting
        }
        if wake { wakeup.signal() }
    }

    // MARK: - The connection's thread

    private func run() {
        let session = HiredisSession(configuration: configuration)
        var backoff = Self.initialBackoff
        var logMetadata: Logger.Metadata = ["redis.endpoint": "\(configuration.endpoint)"]
        while waitForWork() {
            if session.isStale(idleFor: .milliseconds(100)) {
                logger.info("Redis closed the idle connection; reconnecting", metadata: logMetadata)
                session.close()
            }
            if !session.isConnected {
                do {
                    try session.connect()
                    mailbox.withLock { $0.connectError = nil }
                    backoff = Self.initialBackoff
                    logger.debug("connected to Redis", metadata: logMetadata)
                } catch {
                    logMetadata["error"] = "\(error)"
                    logger.warning("Redis connection failed; retrying", metadata: logMetadata)
                    logMetadata["error"] = nil
                    // Wrong credentials or database will not fix themselves within a timeout: fail
                    // what waits now. Unreachable Redis may come back: let callers wait their timeout.
                    mailbox.withLock { $0.connectError = error }
                    failWaiting(with: error, all: !error.isUnavailable)
                    Thread.sleep(forTimeInterval: backoff)
                    backoff = min(backoff * 2, Self.maximumBackoff)
                    continue
                }
            }
            let batch = takeBatch()
            guard !batch.isEmpty else { continue }
            do {
                let results = try session.execute(batch.map(\.command))
                completedRoundTrips.add(1, ordering: .relaxed)
                for (pending, result) in zip(batch, results) { pending.finish(result) }
            } catch {
                logMetadata["error"] = "\(error)"
                logger.warning("Redis batch failed", metadata: logMetadata.merging(["batch": "\(batch.count)"]) { $1 })
                logMetadata["error"] = nil
                for pending in batch { pending.finish(.failure(error)) }
            }
        }
        session.close()
        let leftovers = mailbox.withLock { box in
            defer { box.queue.removeAll() }
            return Array(box.queue)
        }
        for pending in leftovers { pending.finish(.failure(.shutdown)) }
    }

    private static let initialBackoff: TimeInterval = 0.025
    private static let maximumBackoff: TimeInterval = 0.25

    /// Blocks until a command is queued; false once the connection is closed.
    private func waitForWork() -> Bool {
        while true {
            let state: (ready: Bool, closed: Bool) = mailbox.withLock { box in
                if box.isClosed { return (false, true) }
                if !box.queue.isEmpty { return (true, false) }
                box.threadIsWaiting = true
                return (false, false)
            }
            if state.closed { return false }
            if state.ready { return true }
            wakeup.wait()
        }
    }

    /// The next batch; commands already past their deadline are failed, not sent.
    private func takeBatch() -> [Pending] {
        let now = ContinuousClock.now
        let (expired, batch) = mailbox.withLock { box in
            let expiredCount = box.queue.prefix { $0.deadline <= now }.count
            let expired = Array(box.queue.prefix(expiredCount))
            box.queue.removeFirst(expiredCount)
            let count = min(box.queue.count, configuration.maxBatch)
            defer { box.queue.removeFirst(count) }
            return (expired, Array(box.queue.prefix(count)))
        }
        for pending in expired { pending.finish(.failure(.timedOut(endpoint: configuration.endpoint.description))) }
        return batch
    }

    /// While Redis is unreachable or hung, commands wait up to their deadline; this fails those
    /// past it (or all of them) with `error`, else the last connection error, else a timeout.
    private func failWaiting(with error: RedisError?, all: Bool) {
        let now = ContinuousClock.now
        let (expired, reason) = mailbox.withLock { box in
            // Deadlines grow with queue order (one timeout for all), so the expired ones are a prefix.
            let count = all ? box.queue.count : box.queue.prefix { $0.deadline <= now }.count
            defer { box.queue.removeFirst(count) }
            return (Array(box.queue.prefix(count)), error ?? box.connectError)
        }
        let failure = reason ?? .timedOut(endpoint: configuration.endpoint.description)
        for pending in expired { pending.finish(.failure(failure)) }
    }
}
