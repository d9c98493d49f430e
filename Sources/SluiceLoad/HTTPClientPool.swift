import DequeModule
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import Synchronization

/// A small HTTP/1.1 client for generating load against one host: keep-alive connections opened as
/// concurrency demands (up to ``maximumConnections``), one request at a time on each; over TLS
/// (certificate and host name always verified) when given a ``NIOSSLContext``.
///
/// Hand-written over SwiftNIO rather than a full client library: a load generator needs only
/// plain HTTP to a load balancer on a private network, and its own cost must stay small and
/// predictable next to the servers it measures.
public final class HTTPClientPool: Sendable {
    public struct Request: Sendable {
        public var method: HTTPMethod
        public var path: String
        public var headers: [(String, String)]
        public var body: [UInt8]?

        public init(method: HTTPMethod, path: String, headers: [(String, String)] = [], body: [UInt8]? = nil) {
            self.method = method
            self.path = path
            self.headers = headers
            self.body = body
        }
    }

    public struct Response: Sendable {
        public var status: Int
        public var headers: HTTPHeaders
        public var body: [UInt8]
    }

    public struct ClosedError: Error {}

    private struct Pending: Sendable {
        var request: Request
        var continuation: CheckedContinuation<Response, any Error>
    }

    private struct State {
        var queue = Deque<Pending>()
        var idle: [CheckedContinuation<Pending?, Never>] = []
        var connections = 0
        var closed = false
    }

    public let host: String
    public let port: Int
    public let maximumConnections: Int
    /// Idle time after which a keep-alive connection is not reused: below common servers'
    /// keep-alive timeouts (HAProxy's 10 s in deploy/haproxy.cfg, nginx's and Hummingbird's 60 s).
    static let maximumIdle: Duration = .seconds(8)
    private let tls: NIOSSLContext?
    private let state = Mutex(State())

    public init(host: String, port: Int, tls: NIOSSLContext? = nil, maximumConnections: Int = 1024) {
        self.host = host
        self.port = port
        self.tls = tls
        self.maximumConnections = maximumConnections
    }

    /// A TLS 1.2+ client context trusting `caFile` (PEM), or the system's roots without one.
    public static func tlsContext(caFile: String?) throws -> NIOSSLContext {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv12
        if let caFile { configuration.trustRoots = .file(caFile) }
        return try NIOSSLContext(configuration: configuration)
    }

    /// Sends `request` on an idle connection, or a new one.
    public func send(_ request: Request) async throws -> Response {
        try await withCheckedThrowingContinuation { continuation in
            let pending = Pending(request: request, continuation: continuation)
            enum Action { case hand(CheckedContinuation<Pending?, Never>), connect, wait, refuse }
            let action = state.withLock { state -> Action in
                if state.closed { return .refuse }
                if let waiter = state.idle.popLast() { return .hand(waiter) }
                state.queue.append(pending)
                guard state.connections < maximumConnections else { return .wait }
                state.connections += 1
                return .connect
            }
            switch action {
            case .hand(let waiter): waiter.resume(returning: pending)
            case .connect: Task { await self.runConnection() }
            case .wait: break
            case .refuse: continuation.resume(throwing: ClosedError())
            }
        }
    }

    /// Closes idle connections and refuses new requests; requests in flight complete.
    public func close() {
        let (idle, queued) = state.withLock { state in
            state.closed = true
            defer { state.idle = []; state.queue = [] }
            return (state.idle, state.queue)
        }
        for waiter in idle { waiter.resume(returning: nil) }
        for pending in queued { pending.continuation.resume(throwing: ClosedError()) }
    }

    /// The next request for a connection: a queued one, or the next to arrive (nil once closed).
    private func next() async -> Pending? {
        await withCheckedContinuation { (continuation: CheckedContinuation<Pending?, Never>) in
            let ready = state.withLock { state -> Pending?? in
                if let pending = state.queue.popFirst() { return .some(pending) }
                if state.closed { return .some(nil) }
                state.idle.append(continuation)
                return nil
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }

    private func runConnection() async {
        var current = await next()
        defer {
            // A connection that failed leaves work behind: make sure someone picks it up.
            let respawn = state.withLock { state -> Bool in
                state.connections -= 1
                guard !state.queue.isEmpty, !state.closed, state.connections < maximumConnections else { return false }
                state.connections += 1
                return true
            }
            if respawn { Task { await self.runConnection() } }
        }
        guard current != nil else { return }
        do {
            let (tls, host) = (self.tls, self.host)
            let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connectTimeout(.seconds(5))
                .connect(host: host, port: port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        if let tls {
                            // An IP address is verified against the certificate's IP SANs (no SNI).
                            let isAddress = host.contains(":") || host.allSatisfy { $0.isNumber || $0 == "." }
                            try channel.pipeline.syncOperations.addHandler(
                                try NIOSSLClientHandler(context: tls, serverHostname: isAddress ? nil : host))
                        }
                        try channel.pipeline.syncOperations.addHTTPClientHandlers()
                        return try NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>(wrappingChannelSynchronously: channel)
                    }
                }
            try await channel.executeThenClose { inbound, outbound in
                var responses = inbound.makeAsyncIterator()
                while let pending = current {
                    current = nil
                    let response: Response
                    do {
                        response = try await exchange(pending.request, outbound: outbound, responses: &responses)
                    } catch {
                        pending.continuation.resume(throwing: error)
                        throw error
                    }
                    pending.continuation.resume(returning: response)
                    if response.headers["connection"].contains(where: { $0.lowercased() == "close" }) { return }
                    let idleSince = ContinuousClock.now
                    current = await next()
                    // A connection idle this long may be closed by the server at the very moment
                    // it is reused (HAProxy's keep-alive timeout here is 10 s): hand the request
                    // to a fresh connection instead of racing the close.
                    if let pending = current, ContinuousClock.now - idleSince > Self.maximumIdle {
                        state.withLock { $0.queue.prepend(pending) }
                        current = nil
                        return
                    }
                }
            }
        } catch {
            current?.continuation.resume(throwing: error)
        }
    }

    private func exchange(
        _ request: Request, outbound: NIOAsyncChannelOutboundWriter<HTTPClientRequestPart>,
        responses: inout NIOAsyncChannelInboundStream<HTTPClientResponsePart>.AsyncIterator
    ) async throws -> Response {
        var headers = HTTPHeaders(request.headers)
        headers.replaceOrAdd(name: "Host", value: "\(host):\(port)")
        headers.replaceOrAdd(name: "Content-Length", value: String(request.body?.count ?? 0))
        try await outbound.write(.head(HTTPRequestHead(version: .http1_1, method: request.method, uri: request.path, headers: headers)))
        if let body = request.body { try await outbound.write(.body(.byteBuffer(ByteBuffer(bytes: body)))) }
        try await outbound.write(.end(nil))
        var head: HTTPResponseHead?
        var body: [UInt8] = []
        while let part = try await responses.next() {
            switch part {
            case .head(let received): head = received
            case .body(let buffer): body += buffer.readableBytesView
            case .end:
                guard let head else { throw ClosedError() }
                return Response(status: Int(head.status.code), headers: head.headers, body: body)
            }
        }
        throw ClosedError()
    }
}
