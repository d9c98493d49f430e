import CHiredis
import Foundation

/// One hiredis context and the blocking calls on it.
///
/// A session is created on its connection's thread and never leaves it, which is why it needs no
/// `Sendable` conformance: no blocking hiredis call ever runs on a NIO event loop or on Swift's
/// cooperative pool. Once hiredis sets `ctx->err` the context is dead; the session frees it and
/// the next batch reconnects.
final class HiredisSession {
    private let configuration: RedisConfiguration
    private var context: UnsafeMutablePointer<redisContext>?
    private var lastUsed = ContinuousClock.now

    init(configuration: RedisConfiguration) {
        self.configuration = configuration
    }

    deinit { close() }

    var isConnected: Bool { context != nil }

    private var endpoint: String { configuration.endpoint.description }

    /// Connects, authenticates and selects the database.
    func connect() throws(RedisError) {
        close()
        let connectTimeout = timeval(configuration.connectTimeout)
        let candidate: UnsafeMutablePointer<redisContext>? =
            switch configuration.endpoint {
            case .tcp(let host, let port): redisConnectWithTimeout(host, Int32(port), connectTimeout)
            case .unix(let path): redisConnectUnixWithTimeout(path, connectTimeout)
            }
        guard let candidate else { throw .cannotConnect(endpoint: endpoint, reason: "out of memory") }
        if candidate.pointee.err != 0 {
            let reason = Self.errorText(candidate)
            redisFree(candidate)
            throw .cannotConnect(endpoint: endpoint, reason: reason)
        }
        _ = redisSetTimeout(candidate, timeval(configuration.commandTimeout))
        if case .tcp = configuration.endpoint { _ = redisEnableKeepAlive(candidate) }
        context = candidate
        lastUsed = .now
        try handshake()
    }

    private func handshake() throws(RedisError) {
        var commands: [RedisCommand] = []
        if let password = configuration.password?.revealed {
            commands.append(
                configuration.username.map { RedisCommand("AUTH", $0, password) } ?? RedisCommand("AUTH", password)
            )
        } else {
            commands.append(RedisCommand("PING"))  // surfaces NOAUTH now rather than on the first real command
        }
        if configuration.database != 0 {
            commands.append(RedisCommand("SELECT", String(configuration.database)))
        }
        let replies = try execute(commands)
        if case .failure(.server(let message)) = replies[0] {
            close()
            // Redis' own message ("WRONGPASS invalid username-password pair…") never echoes the password.
            throw .authenticationFailed(endpoint: endpoint, user: configuration.username, reason: message)
        }
        if replies.count > 1, case .failure(let error) = replies[1] {
            close()
            throw .invalidConfiguration("SELECT \(configuration.database) failed: \(error)")
        }
    }

    /// True when an idle connection was closed by the server (Redis restarted, `CLIENT KILL`,
    /// idle timeout): RESP2 servers never send unsolicited data, so anything readable while
    /// nothing is in flight is an EOF or a reset.
    func isStale(idleFor threshold: Duration) -> Bool {
        guard let context else { return false }
        guard ContinuousClock.now - lastUsed >= threshold else { return false }
        var descriptor = pollfd(fd: context.pointee.fd, events: Int16(POLLIN), revents: 0)
        return poll(&descriptor, 1, 0) != 0
    }

    /// Writes every command, then reads every reply: one round trip for the whole batch.
    ///
    /// Throws when the connection itself fails (the whole batch is lost and the session closed);
    /// per-command error replies come back as `.failure(.server)`.
    func execute(_ commands: [RedisCommand]) throws(RedisError) -> [Result<RedisReply, RedisError>] {
        guard let context else { throw .connectionLost(endpoint: endpoint, reason: "not connected") }
        for command in commands {
            guard Self.append(command, to: context) == REDIS_OK else { throw failure(context) }
        }
        var results: [Result<RedisReply, RedisError>] = []
        results.reserveCapacity(commands.count)
        for _ in commands {
            var raw: UnsafeMutableRawPointer?
            guard redisGetReply(context, &raw) == REDIS_OK, let raw else { throw failure(context) }
            let reply = Self.convert(raw.assumingMemoryBound(to: redisReply.self))
            freeReplyObject(raw)
            if case .error(let message) = reply {
                results.append(.failure(.server(message)))
            } else {
                results.append(.success(reply))
            }
        }
        lastUsed = .now
        return results
    }

    func close() {
        if let context { redisFree(context) }
        context = nil
    }

    /// The socket, for ``RedisSubscriber/close()`` to shut down a blocking read from outside.
    var fileDescriptor: Int32? { context?.pointee.fd }

    /// Sends `SUBSCRIBE` and then waits for pushed messages without a timeout (subscribe mode).
    func subscribe(_ channels: [String]) throws(RedisError) {
        guard let context else { throw .connectionLost(endpoint: endpoint, reason: "not connected") }
        guard Self.append(RedisCommand("SUBSCRIBE", channels), to: context) == REDIS_OK else { throw failure(context) }
        _ = redisSetTimeout(context, timeval(tv_sec: 0, tv_usec: 0))
    }

    /// Blocks until the server pushes the next reply.
    func nextPush() throws(RedisError) -> RedisReply {
        guard let context else { throw .connectionLost(endpoint: endpoint, reason: "not connected") }
        var raw: UnsafeMutableRawPointer?
        guard redisGetReply(context, &raw) == REDIS_OK, let raw else { throw failure(context) }
        defer { freeReplyObject(raw) }
        return Self.convert(raw.assumingMemoryBound(to: redisReply.self))
    }

    /// Turns the context's error into a typed error and drops the dead context.
    private func failure(_ context: UnsafeMutablePointer<redisContext>) -> RedisError {
        let code = errno
        let type = context.pointee.err
        let reason = Self.errorText(context)
        close()
        if type == REDIS_ERR_IO && (code == EAGAIN || code == EWOULDBLOCK) {
            return .timedOut(endpoint: endpoint)
        }
        return .connectionLost(endpoint: endpoint, reason: reason)
    }

    private static func append(_ command: RedisCommand, to context: UnsafeMutablePointer<redisContext>) -> Int32 {
        command.encoded.withUnsafeBytes { bytes in
            redisAppendFormattedCommand(context, bytes.baseAddress!.assumingMemoryBound(to: CChar.self), bytes.count)
        }
    }

    static func convert(_ pointer: UnsafeMutablePointer<redisReply>) -> RedisReply {
        let reply = pointer.pointee
        func bytes() -> [UInt8] {
            guard let str = reply.str, reply.len > 0 else { return [] }
            return Array(UnsafeRawBufferPointer(start: str, count: Int(reply.len)))
        }
        switch reply.type {
        case REDIS_REPLY_STRING:
            return .bulkString(bytes())
        case REDIS_REPLY_STATUS:
            return .simpleString(String(decoding: bytes(), as: UTF8.self))
        case REDIS_REPLY_ERROR:
            return .error(String(decoding: bytes(), as: UTF8.self))
        case REDIS_REPLY_INTEGER:
            return .integer(Int64(reply.integer))
        case REDIS_REPLY_ARRAY:
            return .array((0..<Int(reply.elements)).map { convert(reply.element[$0]!) })
        default:
            return .null
        }
    }

    private static func errorText(_ context: UnsafeMutablePointer<redisContext>) -> String {
        withUnsafeBytes(of: context.pointee.errstr) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
    }
}

extension timeval {
    init(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        self.init(tv_sec: Int(seconds), tv_usec: Int(attoseconds / 1_000_000_000_000))
    }
}
