import Foundation
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTPTypesHTTP1
import NIOSSL
import Synchronization

/// How long a client may take and how many may be connected at once (`sluice serve`
/// `--read-timeout`, `--idle-timeout`, `--max-connections`).
public struct ConnectionLimits: Sendable, Equatable {
    /// From a request's first byte to its last (headers and body); also how long a new connection
    /// may stay silent. A client slower than this is cut off (408 while still in its headers).
    public var readTimeout: Duration = .seconds(10)
    /// How long a keep-alive connection may sit between requests.
    public var idleTimeout: Duration = .seconds(60)
    /// Connections open at once; past it a new connection is closed as soon as it is accepted.
    public var maxConnections: Int

    public init(readTimeout: Duration = .seconds(10), idleTimeout: Duration = .seconds(60), maxConnections: Int? = nil) {
        self.readTimeout = readTimeout
        self.idleTimeout = idleTimeout
        self.maxConnections = maxConnections ?? Self.defaultMaxConnections()
    }

    /// Descriptors this process may not spend on clients: Redis connections, the listener, logs,
    /// and the accept that has to succeed before a surplus connection can be closed.
    static let reservedDescriptors = 128

    /// The soft `RLIMIT_NOFILE` less ``reservedDescriptors``: past it `accept` would fail with
    /// EMFILE, and then nothing (not even /healthz) is answered.
    public static func defaultMaxConnections() -> Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < rlim_t(Int32.max) else { return 10_000 }
        return max(16, Int(limit.rlim_cur) - reservedDescriptors)
    }
}

/// Hummingbird's HTTP/1.1 channel with what guards a replica's connections around it: a cap on
/// open connections, TLS when `sluice serve` terminates it itself, the read deadline
/// (``RequestReadDeadline``) and the protocol checks (``HTTPProtocolGuard``).
struct GuardedHTTP1Channel: HTTPChannelHandler {
    typealias Value = HTTP1Channel.Value
    let inner: HTTP1Channel
    let limits: ConnectionLimits
    let tls: ServerTLS?
    let gate: ConnectionGate
    let metrics: ServiceMetrics
    let logger: Logger

    var responder: Responder { inner.responder }

    /// The server builder for `Application(server:)`.
    static func builder(limits: ConnectionLimits, tls: ServerTLS?, metrics: ServiceMetrics, logger: Logger) -> HTTPServerBuilder {
        let gate = ConnectionGate(limit: limits.maxConnections)
        return HTTPServerBuilder { responder in
            GuardedHTTP1Channel(
                inner: HTTP1Channel(
                    responder: responder,
                    configuration: .init(
                        idleTimeout: .init(limits.idleTimeout),
                        httpDecoderConfiguration: .init(
                            maxHeaderFieldSize: HTTPProtocolGuard.maxHeaderBytes, maxHeaderListSize: HTTPProtocolGuard.maxHeaderBytes,
                            maxHeaderFieldCount: HTTPProtocolGuard.maxHeaderCount))),
                limits: limits, tls: tls, gate: gate, metrics: metrics, logger: logger)
        }
    }

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        guard gate.enter() else {
            metrics.refusedConnections.increment()
            if gate.shouldLogRefusal() {
                self.logger.warning(
                    "connection limit reached; closing new connections at once",
                    metadata: ["max_connections": "\(limits.maxConnections)"])
            }
            channel.close(promise: nil)
            return channel.eventLoop.makeFailedFuture(ConnectionLimitReached())
        }
        metrics.openConnections.increment()
        let gate = self.gate
        let metrics = self.metrics
        channel.closeFuture.whenComplete { _ in
            gate.leave()
            metrics.openConnections.decrement()
        }
        let readTimeout = TimeAmount(limits.readTimeout)
        let inner = self.inner
        let tls = self.tls?.current
        // Hummingbird's HTTP handlers first; then, around them, from the socket inwards: TLS (if
        // any), the read deadline (which so also bounds a slow handshake), NIO's parser, the
        // protocol guard, the conversion to HTTP types, the progress observer. All of it runs in
        // the channel initializer, before the first read.
        return inner.setup(channel: channel, logger: logger).flatMapThrowing { value in
            let pipeline = channel.pipeline.syncOperations
            let deadline = RequestReadDeadline(timeout: readTimeout, onTimeout: { metrics.readTimeouts.increment() })
            try pipeline.addHandler(deadline, position: .first)
            if let tls { try pipeline.addHandler(NIOSSLServerHandler(context: tls), position: .first) }
            let codec = try pipeline.context(handlerType: HTTP1ToHTTPServerCodec.self)
            try pipeline.addHandler(HTTPProtocolGuard(), position: .before(codec.handler))
            try pipeline.addHandler(RequestProgressObserver(deadline: deadline), position: .after(codec.handler))
            return value
        }
    }

    func handle(value: Value, logger: Logger) async {
        await inner.handle(value: value, logger: logger)
    }
}

struct ConnectionLimitReached: Error {}

/// Counts open connections against the cap; logs a refusal at most once a second.
final class ConnectionGate: Sendable {
    private let limit: Int
    private let open = Atomic<Int>(0)
    private let lastLog = Mutex<ContinuousClock.Instant?>(nil)

    init(limit: Int) { self.limit = limit }

    func enter() -> Bool {
        if open.wrappingAdd(1, ordering: .relaxed).newValue <= limit { return true }
        open.wrappingSubtract(1, ordering: .relaxed)
        return false
    }

    func leave() { open.wrappingSubtract(1, ordering: .relaxed) }

    func shouldLogRefusal() -> Bool {
        lastLog.withLock { last in
            let now = ContinuousClock.now
            guard last.map({ now - $0 >= .seconds(1) }) ?? true else { return false }
            last = now
            return true
        }
    }
}
