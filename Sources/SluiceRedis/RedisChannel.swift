import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS

/// What a Redis channel hands to its owner, on the channel's event loop.
protocol RedisChannelDelegate: AnyObject, Sendable {
    /// One reply, in the order the commands were written (or a push, in subscribe mode).
    func received(_ reply: RedisReply)
    /// The channel closed; `error` says why when it was not asked to.
    func closed(_ error: RedisError?)
}

/// The inbound end of a Redis connection: bytes (after TLS, if any) into hiredis' reader, replies
/// out to the delegate. A protocol error closes the channel: a RESP stream cannot be resynchronised.
///
/// `@unchecked Sendable`: it is handed across the connect future, but every member is touched on
/// its channel's event loop only.
final class RedisChannelHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer

    private let reader = HiredisReader()
    private let endpoint: String
    /// Set on the event loop only; replaced once the handshake is done. Held strongly (the
    /// handshake has no other owner) until the channel closes.
    var delegate: (any RedisChannelDelegate)?
    private var failure: RedisError?
    /// False until the TLS handshake completes (or when there is no TLS).
    private(set) var tlsEstablished = false

    init(endpoint: String) { self.endpoint = endpoint }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? TLSUserEvent, case .handshakeCompleted = event { tlsEstablished = true }
        context.fireUserInboundEventTriggered(event)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        do throws(RedisError) {
            try buffer.withUnsafeReadableBytes { (bytes) throws(RedisError) in try reader.feed(bytes) }
            while let reply = try reader.next() {
                delegate?.received(reply)
            }
        } catch {
            fail(context, .connectionLost(endpoint: endpoint, reason: "\(error)"))
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        fail(context, Self.describe(error, endpoint: endpoint))
    }

    func channelInactive(context: ChannelHandlerContext) {
        delegate?.closed(failure ?? .connectionLost(endpoint: endpoint, reason: "closed by the server"))
        delegate = nil
        context.fireChannelInactive()
    }

    /// Closes the channel, remembering why (the first reason wins).
    private func fail(_ context: ChannelHandlerContext, _ error: RedisError) {
        if failure == nil { failure = error }
        context.close(promise: nil)
    }

    /// Closes the channel for a reason found outside it (a timeout).
    func close(_ channel: Channel, because error: RedisError) {
        if failure == nil { failure = error }
        channel.close(promise: nil)
    }

    static func describe(_ error: any Error, endpoint: String) -> RedisError {
        switch error {
        case let error as RedisError: error
        case let error as NIOSSLError: .tlsFailed(endpoint: endpoint, reason: "\(error)")
        case let error as NIOSSLExtraError: .tlsFailed(endpoint: endpoint, reason: "\(error)")
        case let error as BoringSSLError: .tlsFailed(endpoint: endpoint, reason: "\(error)")
        case let error as IOError: .connectionLost(endpoint: endpoint, reason: error.description)
        default: .connectionLost(endpoint: endpoint, reason: "\(error)")
        }
    }
}

/// Opens channels to Redis: TCP or unix socket, TLS when configured, then `AUTH` and `SELECT`,
/// all within the connect timeout.
struct RedisConnector: Sendable {
    let configuration: RedisConfiguration
    /// Built once from the files (or the reason it could not be); `nil` without TLS.
    let tlsContext: Result<NIOSSLContext, RedisError>?

    init(configuration: RedisConfiguration) {
        self.configuration = configuration
        self.tlsContext = configuration.tls.map { tls in Result { () throws(RedisError) in try tls.makeContext() } }
    }

    init(configuration: RedisConfiguration, tlsContext: Result<NIOSSLContext, RedisError>?) {
        self.configuration = configuration
        self.tlsContext = tlsContext
    }

    /// The same settings and TLS context for one node of a cluster (or one seed).
    func node(_ endpoint: RedisConfiguration.Endpoint) -> RedisConnector {
        RedisConnector(configuration: configuration.node(endpoint), tlsContext: tlsContext)
    }

    var endpoint: String { configuration.endpoint.description }

    /// A connected, authenticated channel whose replies go to `delegate` from then on; `extra`
    /// commands (e.g. `SUBSCRIBE`) are written with the handshake, their replies left to `delegate`.
    func connect(on loop: any EventLoop, delegate: any RedisChannelDelegate, extra: [RedisCommand] = []) -> EventLoopFuture<(any Channel, RedisChannelHandler)> {
        let endpoint = self.endpoint
        let handler = RedisChannelHandler(endpoint: endpoint)
        let sslContext: NIOSSLContext?
        switch tlsContext {
        case .none: sslContext = nil
        case .success(let context): sslContext = configuration.rotated.tls ?? context
        case .failure(let error): return loop.makeFailedFuture(error)
        }
        let serverName = Self.serverName(configuration)
        let bootstrap = ClientBootstrap(group: loop)
            .connectTimeout(TimeAmount(configuration.connectTimeout))
            .channelOption(.socketOption(.so_keepalive), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let sslContext {
                        try channel.pipeline.syncOperations.addHandler(try NIOSSLClientHandler(context: sslContext, serverHostname: serverName))
                    }
                    try channel.pipeline.syncOperations.addHandler(handler)
                }
            }
        let connected: EventLoopFuture<any Channel> =
            switch configuration.endpoint {
            case .tcp(let host, let port): bootstrap.channelOption(.socketOption(.tcp_nodelay), value: 1).connect(host: host, port: port)
            case .unix(let path): bootstrap.connect(unixDomainSocketPath: path)
            }
        let configuration = self.configuration
        return connected.flatMapError { error in
            loop.makeFailedFuture(Self.connectFailure(error, endpoint: endpoint))
        }.flatMap { channel in
            let handshake = Handshake(
                configuration: configuration, endpoint: endpoint, promise: loop.makePromise(), then: delegate, channel: channel, handler: handler)
            handler.delegate = handshake
            let deadline = loop.scheduleTask(in: TimeAmount(configuration.connectTimeout)) {
                let silent: RedisError =
                    sslContext != nil && !handler.tlsEstablished
                    ? .tlsFailed(endpoint: endpoint, reason: "no TLS handshake within the connect timeout (is it a TLS port?)")
                    : .cannotConnect(endpoint: endpoint, reason: "no answer within the connect timeout")
                handler.close(channel, because: silent)
            }
            var buffer = channel.allocator.buffer(capacity: 256)
            for command in handshake.commands + extra { buffer.writeBytes(command.encoded) }
            channel.writeAndFlush(buffer, promise: nil)
            return handshake.promise.futureResult.always { _ in deadline.cancel() }.map { (channel, handler) }
        }
    }

    /// The name verified against the certificate and sent as SNI: the configured one, else the
    /// URL's host unless it is an IP address (SNI carries no addresses; swift-nio-ssl then checks
    /// the peer's address against the certificate's IP SANs).
    static func serverName(_ configuration: RedisConfiguration) -> String? {
        if let name = configuration.tls?.serverName { return name }
        guard case .tcp(let host, _) = configuration.endpoint else { return nil }
        return (try? SocketAddress(ipAddress: host, port: 0)) == nil ? host : nil
    }

    private static func connectFailure(_ error: any Error, endpoint: String) -> RedisError {
        switch error {
        case ChannelError.connectTimeout: .cannotConnect(endpoint: endpoint, reason: "timed out")
        case let error as NIOConnectionError:
            .cannotConnect(endpoint: endpoint, reason: error.connectionErrors.first.map { "\($0.error)" } ?? "\(error)")
        case let error as IOError: .cannotConnect(endpoint: endpoint, reason: error.description)
        default: RedisChannelHandler.describe(error, endpoint: endpoint)
        }
    }
}

/// The replies to `AUTH` (or `PING`) and `SELECT`, checked before the channel is handed over.
/// Lives on the channel's event loop (hence `@unchecked Sendable`).
private final class Handshake: RedisChannelDelegate, @unchecked Sendable {
    let commands: [RedisCommand]
    let promise: EventLoopPromise<Void>
    private let configuration: RedisConfiguration
    private let endpoint: String
    private let next: any RedisChannelDelegate
    private let channel: any Channel
    private let handler: RedisChannelHandler
    private var replies: [RedisReply] = []
    private var isDone = false
    /// The user authenticated as, for the error if Redis refuses.
    private let username: String?

    init(
        configuration: RedisConfiguration, endpoint: String, promise: EventLoopPromise<Void>, then next: any RedisChannelDelegate,
        channel: any Channel, handler: RedisChannelHandler
    ) {
        var commands: [RedisCommand] = []
        let credentials = configuration.currentCredentials
        if let credentials {
            commands.append(credentials.command)
        } else {
            commands.append(RedisCommand("PING"))  // surfaces NOAUTH now rather than on the first real command
        }
        if configuration.database != 0 { commands.append(RedisCommand("SELECT", String(configuration.database))) }
        self.commands = commands
        self.username = credentials?.username
        self.configuration = configuration
        self.endpoint = endpoint
        self.promise = promise
        self.next = next
        self.channel = channel
        self.handler = handler
    }

    func received(_ reply: RedisReply) {
        guard !isDone else { return }
        replies.append(reply)
        guard replies.count == commands.count else { return }
        if case .error(let message) = replies[0] {
            // Redis' own message ("WRONGPASS invalid username-password pair…") never echoes the password.
            return fail(.authenticationFailed(endpoint: endpoint, user: username, reason: message))
        }
        if replies.count > 1, case .error(let message) = replies[1] {
            return fail(.invalidConfiguration("SELECT \(configuration.database) failed: Redis error: \(message)"))
        }
        isDone = true
        handler.delegate = next
        promise.succeed()
    }

    func closed(_ error: RedisError?) {
        guard !isDone else { return }
        isDone = true
        let reason = error ?? .cannotConnect(endpoint: endpoint, reason: "closed during the handshake")
        promise.fail(Self.asConnectFailure(reason, endpoint: endpoint))
    }

    /// Refused credentials or database: the channel is useless; closing it reports to nobody.
    private func fail(_ error: RedisError) {
        isDone = true
        handler.delegate = nil
        promise.fail(error)
        channel.close(promise: nil)
    }

    /// A channel lost during the handshake is a failed connection, whatever broke it.
    private static func asConnectFailure(_ error: RedisError, endpoint: String) -> RedisError {
        if case .connectionLost(_, let reason) = error { return .cannotConnect(endpoint: endpoint, reason: reason) }
        return error
    }
}

extension TimeAmount {
    init(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        self = .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}
