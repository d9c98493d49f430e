import NIOCore
import NIOHTTPTypes

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
        let body = Problem(status: .requestTimeout, type: "/problems/request-timeout", title: "Request timeout",
                           detail: "The request was not received in time.").encodedBody
        return ByteBuffer(bytes: Array("HTTP/1.1 408 Request Timeout\r\nContent-Type: application/problem+json\r\nConnection: close\r\n"
            .utf8) + Array("Content-Length: \(body.count)\r\n\r\n".utf8) + body)
    }()
}
