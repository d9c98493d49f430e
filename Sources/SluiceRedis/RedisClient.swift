import Logging
import SluiceSecrets
import Synchronization
import Tracing

/// The entry point for Redis access: a small pool of auto-pipelining ``RedisConnection``s (each on
/// one of SwiftNIO's shared event loops) to one Redis, or, in cluster mode, a connection per
/// master with slot routing (``ClusterRouter``). Callers see the same API either way.
///
/// Size the pool to the cores, not to the request concurrency: each connection already batches
/// every concurrent caller into one round trip, and more connections only add contention.
public final class RedisClient: RedisCommands {
    public let configuration: RedisConfiguration
    private let connections: [RedisConnection]
    private let router: ClusterRouter?
    private let nextConnection = Atomic<Int>(0)
    private let logger: Logger

    public init(configuration: RedisConfiguration, logger: Logger = Logger(label: "sluice.redis")) {
        self.configuration = configuration
        self.logger = logger
        switch configuration.mode {
        case .single:
            self.router = nil
            let connector = RedisConnector(configuration: configuration)
            self.connections = (0..<max(1, configuration.connections)).map { _ in
                RedisConnection(connector: connector, logger: logger)
            }
        case .cluster:
            self.router = ClusterRouter(configuration: configuration, logger: logger)
            self.connections = []
        }
    }

    /// Sends one command on the next connection of the pool (in cluster mode: to the master of
    /// its keys' slot).
    public func send(_ command: RedisCommand) async throws(RedisError) -> RedisReply {
        // Only within a trace (a request, a job): background loops (heartbeats, polls, claims)
        // would otherwise send a root span for every call.
        guard configuration.traced, ServiceContext.current != nil else { return try await untracedSend(command) }
        let span = startSpan("redis \(command.name)", ofKind: .client)
        defer { span.end() }
        span.attributes["db.system.name"] = "redis"
        span.attributes["db.operation.name"] = command.name
        do {
            return try await untracedSend(command)
        } catch {
            span.recordError(error)
            span.setStatus(.init(code: .error))
            throw error
        }
    }

    private func untracedSend(_ command: RedisCommand) async throws(RedisError) -> RedisReply {
        if let router { return try await router.send(command) }
        let index = nextConnection.wrappingAdd(1, ordering: .relaxed).oldValue
        return try await connections[index % connections.count].send(command)
    }

    /// Redis Cluster redirects followed so far (zero for one Redis).
    public var redirects: (moved: Int, ask: Int) { router?.redirects ?? (0, 0) }

    public var layoutEpoch: Int { redirects.moved }

    /// Runs a script with `EVALSHA`, loading it first if needed; after `NOSCRIPT` (Redis restarted,
    /// failed over or flushed its scripts) it runs the source with `EVAL`, which caches it again.
    public func evaluate(_ script: RedisScript, _ call: ScriptCall) async throws(RedisError) -> RedisReply {
        let sha: String
        if let cached = script.sha { sha = cached } else { sha = try await load(script) }
        do {
            return try await send(RedisCommand("EVALSHA", script: sha.utf8, call))
        } catch .server(let message) where message.hasPrefix("NOSCRIPT") {
            // EVAL with the source cannot race another flush, and puts the script back in the cache.
            return try await send(RedisCommand("EVAL", script: script.source, call))
        }
    }

    /// Loads a script with `SCRIPT LOAD` and returns its SHA1.
    @discardableResult
    public func load(_ script: RedisScript) async throws(RedisError) -> String {
        let reply = try await send(RedisCommand(arguments: [Array("SCRIPT".utf8), Array("LOAD".utf8), script.source]))
        guard let sha = reply.string, sha.count == 40 else {
            throw .unexpectedReply("SCRIPT LOAD of \(script.name) answered \(reply)")
        }
        script.remember(sha: sha)
        return sha
    }

    /// Checks that every connection of the pool (every master of a cluster) can connect,
    /// authenticate and answer.
    public func ping() async throws(RedisError) {
        for connection in try await router?.masters() ?? connections {
            try RedisReply.expectPong(try await connection.send(RedisCommand("PING")))
        }
    }

    /// Returns when any master answers `PING` (one Redis: when it does), asking them in turn.
    public func pingAny() async throws(RedisError) {
        var failure = RedisError.unavailableSlot(-1)
        for connection in try await router?.masters() ?? connections {
            do {
                try RedisReply.expectPong(try await connection.send(RedisCommand("PING")))
                return
            } catch {
                failure = error
            }
        }
        throw failure
    }

    /// Round trips on all connections so far.
    public var roundTrips: Int { router?.roundTrips ?? connections.reduce(0) { $0 + $1.roundTrips } }

    /// Stops every connection; queued commands fail with ``RedisError/shutdown``.
    public func shutdown() {
        for connection in connections { connection.close() }
        router?.shutdown()
    }

    /// Authenticates as `credentials` from now on, without a failed command: they are tried on a
    /// connection of their own first (a refusal throws and keeps the current ones), then every new
    /// connection uses them and every open one is sent `AUTH` with them, in line with its pipeline
    /// (so a user whose old password is later removed, or who is deleted, loses nothing).
    /// Subscribers (which may not send `AUTH`) use them when they next connect.
    public func rotate(to credentials: RedisCredentials) async throws(RedisError) {
        var trial = configuration.node(try await trialEndpoint())
        trial.rotated = RotatedCredentials()
        trial.rotated.credentials = credentials
        trial.rotated.tls = configuration.rotated.tls
        try await Self.tryConnecting(RedisConnector(configuration: trial), logger: logger)
        configuration.rotated.credentials = credentials
        for connection in router?.connections ?? connections {
            do {
                _ = try await connection.send(credentials.command)
            } catch {
                // Not connected now (it will connect with the new password), or lost: nothing to fix.
                logger.debug("AUTH with the rotated credentials not sent", metadata: ["redis.endpoint": "\(connection.endpoint)", "error": "\(error)"])
            }
        }
    }

    /// Reads the TLS files (CA, client certificate and key) again: new handshakes use them once
    /// one has succeeded with them; open connections keep the session they have.
    public func reloadTLS() async throws(RedisError) {
        guard let tls = configuration.tls else { return }
        let context = try tls.makeContext()
        var trial = configuration.node(try await trialEndpoint())
        trial.rotated = RotatedCredentials()
        trial.rotated.credentials = configuration.rotated.credentials
        try await Self.tryConnecting(RedisConnector(configuration: trial, tlsContext: .success(context)), logger: logger)
        configuration.rotated.tls = context
    }

    /// Where new credentials are tried: the Redis, or a master of the cluster.
    private func trialEndpoint() async throws(RedisError) -> RedisConfiguration.Endpoint {
        guard let router else { return configuration.endpoint }
        return try await router.masters().first?.endpoint ?? configuration.endpoint
    }

    /// Connects, authenticates and pings with `connector`'s settings alone, then closes. Its
    /// failure is the caller's to report: the connection's own retry warnings are not logged.
    private static func tryConnecting(_ connector: RedisConnector, logger: Logger) async throws(RedisError) {
        var quiet = logger
        quiet.logLevel = .critical
        let connection = RedisConnection(connector: connector, logger: quiet)
        defer { connection.close() }
        _ = try await connection.send(RedisCommand("PING"))
    }
}
