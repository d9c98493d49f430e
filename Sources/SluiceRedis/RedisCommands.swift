/// The narrow view of Redis that the limiter, the queue and the stores depend on: send a command,
/// run a script. Owned here, next to the client, the way go-redis/redis_rate owns its `rediser`
/// interface: a store never sees pools, cluster routing or TLS, and a second implementation (one
/// Redis or a Redis Cluster behind ``RedisClient``, a recording wrapper in a test) fits in.
public protocol RedisCommands: Sendable {
    /// Sends one command and returns its reply; error replies are thrown as ``RedisError/server(_:)``.
    func send(_ command: RedisCommand) async throws(RedisError) -> RedisReply
    /// Runs a script by its SHA1 with `call`'s keys and arguments, loading it again whenever
    /// Redis has forgotten it.
    func evaluate(_ script: RedisScript, _ call: ScriptCall) async throws(RedisError) -> RedisReply
    /// Changes whenever the cluster's slots are seen to move (a `MOVED` redirect): state derived
    /// from one node's clock is only comparable within one epoch. Always 0 for one Redis.
    var layoutEpoch: Int { get }
    /// Returns when Redis answers `PING`: with a Redis Cluster, when any master does (readiness:
    /// one failed node must not drain every replica, whose keys on the other masters still work).
    func pingAny() async throws(RedisError)
}

extension RedisCommands {
    public func pingAny() async throws(RedisError) {
        try RedisReply.expectPong(try await send(RedisCommand("PING")))
    }

    public func send(_ name: String, _ arguments: String...) async throws(RedisError) -> RedisReply {
        try await send(RedisCommand(name, arguments))
    }

    /// ``send(_:)`` for a store whose errors wrap Redis' (`KeyStoreError.redis`, …): the one place a
    /// ``RedisError`` is turned into a store's own error.
    public func send<Failure: RedisBackedError>(_ command: RedisCommand, failing _: Failure.Type) async throws(Failure) -> RedisReply {
        do {
            return try await send(command)
        } catch {
            throw Failure.redis(error)
        }
    }

    /// Runs a script by its SHA1 with these keys and arguments (``evaluate(_:_:)``).
    public func evaluate(_ script: RedisScript, keys: [String], arguments: [String]) async throws(RedisError) -> RedisReply {
        try await evaluate(script, ScriptCall(keys: keys, arguments: arguments))
    }

    /// ``evaluate(_:keys:arguments:)`` for a store whose errors wrap Redis'.
    public func evaluate<Failure: RedisBackedError>(
        _ script: RedisScript, keys: [String], arguments: [String], failing: Failure.Type
    ) async throws(Failure) -> RedisReply {
        try await evaluate(script, ScriptCall(keys: keys, arguments: arguments), failing: failing)
    }

    /// ``evaluate(_:_:)`` for a store whose errors wrap Redis'.
    public func evaluate<Failure: RedisBackedError>(
        _ script: RedisScript, _ call: ScriptCall, failing _: Failure.Type
    ) async throws(Failure) -> RedisReply {
        do {
            return try await evaluate(script, call)
        } catch {
            throw Failure.redis(error)
        }
    }
}

extension RedisReply {
    /// `PING`'s answer, or the error saying what came instead.
    static func expectPong(_ reply: RedisReply) throws(RedisError) {
        guard reply.string == "PONG" else { throw .unexpectedReply("PING answered \(reply)") }
    }
}
