import DequeModule
import Logging
import NIOCore
import NIOPosix
import Synchronization

/// One Redis connection on a SwiftNIO event loop, with automatic pipelining.
///
/// Callers put their command into a bounded, lock-protected queue and suspend. The connection's
/// event loop writes everything queued (up to ``RedisConfiguration/maxBatch``) with one flush and
/// hands each reply, parsed by hiredis' reader, back to its caller. One batch is in flight at a
/// time: while it is, the next one accumulates, so N concurrent callers share one round trip and
/// one write, and a busy replica spends few syscalls per command (the point of pipelining here).
/// A caller wakes the loop only when the loop is not already going to look at the queue.
///
/// Failure handling:
/// - a connection error fails the in-flight batch only (whether those commands ran is unknown);
/// - the connection is re-established at once, then with backoff (25 ms doubling to 250 ms) while
///   later commands wait, each at most its command timeout, so a short Redis restart costs at
///   most one batch; after a refusal that will not fix itself (credentials, certificates)
///   commands fail at once with it for 2 s, then the next one tries again: no retry storm;
/// - a timer every 1/20 of the command timeout fails queued commands past their deadline, and
///   drops the connection when the batch in flight has waited the full command timeout (a shorter
///   read timeout would turn a brief Redis stall into a reconnect for everyone).
public final class RedisConnection: Sendable {
    /// A queued command. Its continuation is unchecked (measurably cheaper on this path); every
    /// `Pending` is finished exactly once: refused in `send`, answered or failed with its batch,
    /// expired by the timer, or failed with `.shutdown` by `close`.
    private struct Pending: Sendable {
        /// Replies to discard before this command's own: 1 after an `ASKING` sent with it.
        var skip = 0
        /// What is written: the command, after `ASKING` when `skip` is 1.
        let bytes: [UInt8]
        let deadline: ContinuousClock.Instant
        let continuation: UnsafeContinuation<Result<RedisReply, RedisError>, Never>

        func finish(_ result: Result<RedisReply, RedisError>) {
            continuation.resume(returning: result)
        }
    }

    private struct Mailbox: ~Copyable {
        var queue: Deque<Pending> = []
        /// True while the event loop is going to look at the queue anyway (a drain is scheduled,
        /// a batch is in flight or a connection is being made): senders then need not wake it.
        var loopWillDrain = false
        var isClosed = false
        /// Why the last connection attempt failed, until one succeeds: what a command that
        /// expires meanwhile is told, rather than a bare timeout.
        var connectError: RedisError?
        /// After a refusal that will not fix itself (credentials, certificates), commands fail at
        /// once with it until this instant, when the next one tries again.
        var refusedUntil: ContinuousClock.Instant?
    }

    private enum State {
        case idle
        case connecting
        case connected(any Channel, RedisChannelHandler)
        case backingOff
    }

    private let mailbox = Mutex(Mailbox())
    private let completedRoundTrips = Atomic<Int>(0)
    private let configuration: RedisConfiguration
    private let connector: RedisConnector
    private let logger: Logger
    /// The loop this connection's channel, state and timer live on.
    let loop: any EventLoop

    // Touched on `loop` only.
    private nonisolated(unsafe) var state = State.idle
    private nonisolated(unsafe) var inFlight: Deque<Pending> = []
    private nonisolated(unsafe) var batchWrittenAt = ContinuousClock.now
    private nonisolated(unsafe) var backoff = RedisConnection.initialBackoff
    private nonisolated(unsafe) var timer: RepeatedTask?

    /// The connection itself is opened lazily by the first command.
    public convenience init(
        configuration: RedisConfiguration, logger: Logger,
        eventLoop: any EventLoop = MultiThreadedEventLoopGroup.singleton.next()
    ) {
        self.init(connector: RedisConnector(configuration: configuration), logger: logger, eventLoop: eventLoop)
    }

    /// With a connector shared by several connections: the TLS files are read and the context
    /// built once for them all.
    init(connector: RedisConnector, logger: Logger, eventLoop: any EventLoop = MultiThreadedEventLoopGroup.singleton.next()) {
        let configuration = connector.configuration
        self.configuration = configuration
        self.connector = connector
        self.logger = logger
        self.loop = eventLoop
        let interval = min(max(configuration.commandTimeout / 20, .milliseconds(5)), .milliseconds(100))
        loop.execute { [weak self] in
            guard let self else { return }
            self.timer = self.loop.scheduleRepeatedTask(initialDelay: TimeAmount(interval), delay: TimeAmount(interval)) { [weak self] _ in
                self?.checkDeadlines()
            }
        }
    }

    deinit {
        timer?.cancel()
        if case .connected(let channel, _) = state { channel.close(promise: nil) }
    }

    /// The Redis this connection talks to.
    var endpoint: RedisConfiguration.Endpoint { configuration.endpoint }

    /// Round trips (batches written and answered) so far; commands ÷ round trips is the pipelining depth.
    public var roundTrips: Int { completedRoundTrips.load(ordering: .relaxed) }

    /// Sends one command and waits for its reply.
    ///
    /// Error replies are thrown as ``RedisError/server(_:)``.
    public func send(_ command: RedisCommand) async throws(RedisError) -> RedisReply {
        try await send(command, asking: false)
    }

    /// With `asking`, `ASKING` is written right before the command, on this connection, and its
    /// `OK` discarded: how a Redis Cluster client follows an `ASK` redirect.
    func send(_ command: RedisCommand, asking: Bool) async throws(RedisError) -> RedisReply {
        let deadline = ContinuousClock.now + configuration.commandTimeout
        let result = await withUnsafeContinuation { (continuation: UnsafeContinuation<Result<RedisReply, RedisError>, Never>) in
            let pending = Pending(
                skip: asking ? 1 : 0, bytes: asking ? Self.asking + command.encoded : command.encoded,
                deadline: deadline, continuation: continuation)
            let outcome: (wake: Bool, refusal: RedisError?) = mailbox.withLock { box in
                if box.isClosed { return (false, .shutdown) }
                if let until = box.refusedUntil, let refusal = box.connectError {
                    if ContinuousClock.now < until { return (false, refusal) }
                    box.refusedUntil = nil
                }
                if box.queue.count >= configuration.maxQueued { return (false, .backPressure(queued: box.queue.count)) }
                box.queue.append(pending)
                if box.loopWillDrain { return (false, nil) }
                box.loopWillDrain = true
                return (true, nil)
            }
            if let refusal = outcome.refusal {
                pending.finish(.failure(refusal))
            } else if outcome.wake {
                loop.execute { self.drain() }
            }
        }
        return try result.get()
    }

    /// Fails whatever is queued or in flight with ``RedisError/shutdown`` and closes the channel.
    public func close() {
        let queued = mailbox.withLock { box in
            box.isClosed = true
            defer { box.queue.removeAll() }
            return Array(box.queue)
        }
        for pending in queued { pending.finish(.failure(.shutdown)) }
        loop.execute { [self] in
            timer?.cancel()
            timer = nil
            if case .connected(let channel, let handler) = state { handler.close(channel, because: .shutdown) }
        }
    }

    private var isClosed: Bool { mailbox.withLock { $0.isClosed } }

    // MARK: - On the event loop

    /// Writes the next batch if the channel is free, connecting first if need be.
    private func drain() {
        let now = ContinuousClock.now
        let connected: (any Channel)?
        switch state {
        case .connected(let channel, _) where inFlight.isEmpty: connected = channel
        case .connected, .connecting, .backingOff: return  // whatever ends those calls drain again
        case .idle: connected = nil
        }
        // The batch moves straight from the queue into `inFlight` (no array of its own).
        let (expired, hasWork) = mailbox.withLock { box -> ([Pending], Bool) in
            // Deadlines grow with queue order (one timeout for all), so the expired ones are a prefix.
            let expiredCount = box.queue.prefix { $0.deadline <= now }.count
            let expired = expiredCount == 0 ? [] : Array(box.queue.prefix(expiredCount))
            box.queue.removeFirst(expiredCount)
            if box.queue.isEmpty || box.isClosed {
                box.loopWillDrain = false
                return (expired, false)
            }
            guard connected != nil else { return (expired, true) }
            let count = min(box.queue.count, configuration.maxBatch)
            inFlight.append(contentsOf: box.queue.prefix(count))
            box.queue.removeFirst(count)
            return (expired, true)
        }
        for pending in expired { pending.finish(.failure(.timedOut(endpoint: configuration.endpoint.description))) }
        guard let channel = connected else {
            if hasWork { connect() }
            return
        }
        guard !inFlight.isEmpty else { return }
        var buffer = channel.allocator.buffer(capacity: inFlight.reduce(0) { $0 + $1.bytes.count })
        for pending in inFlight { buffer.writeBytes(pending.bytes) }
        batchWrittenAt = .now
        channel.writeAndFlush(buffer, promise: nil)
    }

    private func connect() {
        guard !isClosed else { return }
        state = .connecting
        connector.connect(on: loop, delegate: self).whenComplete { [self] result in
            switch result {
            case .success(let (channel, handler)):
                if isClosed {
                    handler.close(channel, because: .shutdown)
                    state = .idle
                    return
                }
                state = .connected(channel, handler)
                backoff = Self.initialBackoff
                mailbox.withLock { box in
                    box.connectError = nil
                    box.refusedUntil = nil
                }
                logger.debug("connected to Redis", metadata: ["redis.endpoint": "\(configuration.endpoint)"])
                drain()
            case .failure(let failure):
                let error = failure as? RedisError ?? .cannotConnect(endpoint: configuration.endpoint.description, reason: "\(failure)")
                logger.warning("Redis connection failed; retrying", metadata: ["redis.endpoint": "\(configuration.endpoint)", "error": "\(error)"])
                // Wrong credentials, database or certificates will not fix themselves within a
                // timeout: fail what waits now. Unreachable Redis may come back: callers wait their timeout.
                let delay = error.isUnavailable ? backoff : max(backoff, Self.refusedBackoff)
                mailbox.withLock { box in
                    box.connectError = error
                    box.refusedUntil = error.isUnavailable ? nil : .now + delay
                }
                failWaiting(with: error, all: !error.isUnavailable)
                state = .backingOff
                backoff = min(backoff * 2, Self.maximumBackoff)
                loop.scheduleTask(in: TimeAmount(delay)) { [self] in
                    state = .idle
                    drain()
                }
            }
        }
    }

    /// Every tick of the timer: a batch in flight for the whole command timeout costs the
    /// connection; queued commands past their deadline fail.
    private func checkDeadlines() {
        if case .connected(let channel, let handler) = state, !inFlight.isEmpty,
            ContinuousClock.now - batchWrittenAt >= configuration.commandTimeout
        {
            handler.close(channel, because: .timedOut(endpoint: configuration.endpoint.description))
        }
        failWaiting(with: nil, all: false)
    }

    /// Fails queued commands past their deadline (or all of them) with `error`, else the last
    /// connection error, else a timeout.
    private func failWaiting(with error: RedisError?, all: Bool) {
        let now = ContinuousClock.now
        // Runs on every tick of the timer: nothing is allocated unless something expired.
        let (expired, reason) = mailbox.withLock { box -> ([Pending], RedisError?) in
            let count = all ? box.queue.count : box.queue.prefix { $0.deadline <= now }.count
            guard count > 0 else { return ([], nil) }
            defer { box.queue.removeFirst(count) }
            return (Array(box.queue.prefix(count)), error ?? box.connectError)
        }
        guard !expired.isEmpty else { return }
        let failure = reason ?? .timedOut(endpoint: configuration.endpoint.description)
        for pending in expired { pending.finish(.failure(failure)) }
    }

    private static let asking = RedisCommand("ASKING").encoded
    private static let initialBackoff: Duration = .milliseconds(25)
    private static let maximumBackoff: Duration = .milliseconds(250)
    private static let refusedBackoff: Duration = .seconds(2)
}

extension RedisConnection: RedisChannelDelegate {
    func received(_ reply: RedisReply) {
        if let first = inFlight.first, first.skip > 0 {
            inFlight[inFlight.startIndex].skip -= 1  // ASKING's reply; an error shows in the command's own
            return
        }
        guard let pending = inFlight.popFirst() else {
            // RESP2 servers never speak unasked: the stream is out of step.
            if case .connected(let channel, let handler) = state {
                handler.close(channel, because: .unexpectedReply("a reply nobody asked for"))
            }
            return
        }
        // Counted before the last caller resumes, so that it sees its own round trip.
        let batchDone = inFlight.isEmpty
        if batchDone { completedRoundTrips.add(1, ordering: .relaxed) }
        if case .error(let message) = reply {
            pending.finish(.failure(.server(message)))
        } else {
            pending.finish(.success(reply))
        }
        if batchDone { drain() }
    }

    func closed(_ error: RedisError?) {
        state = .idle
        let lost = inFlight
        inFlight.removeAll()
        let reason = isClosed ? .shutdown : (error ?? .connectionLost(endpoint: configuration.endpoint.description, reason: "closed"))
        if isClosed {
            // asked for
        } else if lost.isEmpty {
            logger.info("Redis closed the idle connection; reconnecting on demand", metadata: ["redis.endpoint": "\(configuration.endpoint)"])
        } else {
            logger.warning(
                "Redis batch failed", metadata: ["redis.endpoint": "\(configuration.endpoint)", "error": "\(reason)", "batch": "\(lost.count)"])
        }
        for pending in lost { pending.finish(.failure(reason)) }
        drain()
    }
}
