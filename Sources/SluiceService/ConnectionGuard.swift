import Foundation
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTPTypes
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

/// Hummingbird's HTTP/1.1 channel with a connection cap and a read deadline in front of it, and
/// TLS in front of those when `sluice serve` terminates TLS itself.
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

/// Sees decoded request parts and written response parts and tells ``RequestReadDeadline``
/// where the request is (a direct call: both live on the channel's event loop).
final class RequestProgressObserver: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private let deadline: RequestReadDeadline

    init(deadline: RequestReadDeadline) { self.deadline = deadline }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head: deadline.headRead()
        case .end: deadline.requestRead()
        case .body: break
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data) { deadline.responseWritten() }
        context.write(data, promise: promise)
    }
}

/// The read deadline, on raw bytes so that it sees a request before its headers parse: a request
/// must arrive in full within `timeout` of its first byte (or of the connection opening). A
/// slowloris client trickling one byte a second never gets past it, unlike an idle timer that
/// every byte would reset. The timer is lazy: finishing a request only clears the expiry, and a
/// timer that fires early re-arms itself for the current one, so a keep-alive connection costs
/// one scheduled task per `timeout`, not one per request.
final class RequestReadDeadline: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private enum Phase { case idle, reading, awaitingResponse }
    private let timeout: TimeAmount
    private let onTimeout: @Sendable () -> Void
    private var phase = Phase.idle
    private var headSeen = false
    /// When the request being read must be complete; nil when none is being read.
    private var expiry: NIODeadline?
    private var timer: Scheduled<Void>?
    private var context: ChannelHandlerContext?

    init(timeout: TimeAmount, onTimeout: @escaping @Sendable () -> Void) {
        self.timeout = timeout
        self.onTimeout = onTimeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if context.channel.isActive { beginRequest() }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        self.context = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        if phase == .idle { beginRequest() }
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if phase == .idle { beginRequest() }
        context.fireChannelRead(data)
    }

    /// A request head was decoded (a pipelined one, buffered meanwhile, may start here).
    func headRead() {
        if phase == .idle { beginRequest() }
        headSeen = true
    }

    /// The request was read in full: no deadline until the next one.
    func requestRead() {
        expiry = nil
        phase = .awaitingResponse
    }

    /// Its answer was written.
    func responseWritten() {
        if phase == .awaitingResponse { phase = .idle }
        headSeen = false
    }

    private func beginRequest() {
        phase = .reading
        let expiry = NIODeadline.now() + timeout
        self.expiry = expiry
        if timer == nil { schedule(at: expiry) }
    }

    private func schedule(at deadline: NIODeadline) {
        guard let context else { return }
        timer = context.eventLoop.assumeIsolated().scheduleTask(deadline: deadline) { [self] in fire() }
    }

    private func fire() {
        timer = nil
        guard phase == .reading, let expiry, let context else { return }
        if expiry > .now() {
            schedule(at: expiry)  // an earlier request's timer: re-arm for this one
            return
        }
        onTimeout()
        if !headSeen {
            context.writeAndFlush(wrapOutboundOut(Self.requestTimeout), promise: nil)
        }
        context.close(promise: nil)
    }

    /// 408 as problem+json, written before the headers parsed (no HTTP layer to ask yet).
    private static let requestTimeout: ByteBuffer = {
        let body = #"{"type":"/problems/request-timeout","title":"Request timeout","status":408,"detail":"The request was not received in time."}"#
        return ByteBuffer(string: "HTTP/1.1 408 Request Timeout\r\nContent-Type: application/problem+json\r\nConnection: close\r\n"
            + "Content-Length: \(body.utf8.count)\r\n\r\n\(body)")
    }()
}
