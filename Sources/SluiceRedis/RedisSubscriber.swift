import Logging
import NIOCore
import NIOPosix
import Synchronization

/// A Redis pub/sub subscription on a connection of its own, on a SwiftNIO event loop.
///
/// Messages are handed to `onMessage` on that event loop (keep it short, never block). After a
/// lost connection the subscriber reconnects with backoff and subscribes again, then calls
/// `onReconnect`: messages published in between are lost, so a cache fed by them must be dropped.
/// `SUBSCRIBE` is written with the handshake, so the subscription is active before `onReconnect`.
/// On a Redis Cluster any node will do (`PUBLISH` is broadcast over the cluster bus): the
/// subscriber takes the seeds in turn, moving to the next one whenever its node is lost.
public final class RedisSubscriber: Sendable {
    public typealias MessageHandler = @Sendable (_ channel: String, _ message: [UInt8]) -> Void

    private let configuration: RedisConfiguration
    /// One per seed (a single Redis has one).
    private let connectors: [RedisConnector]
    private let channels: [String]
    private let logger: Logger
    private let onMessage: MessageHandler
    private let onReconnect: @Sendable () -> Void
    private let loop: any EventLoop
    private let isClosed = Atomic<Bool>(false)

    // Touched on `loop` only.
    private nonisolated(unsafe) var channel: (any Channel, RedisChannelHandler)?
    private nonisolated(unsafe) var subscribedBefore = false
    private nonisolated(unsafe) var backoff = Duration.milliseconds(25)
    private nonisolated(unsafe) var attempt = 0

    public init(
        configuration: RedisConfiguration, channels: [String], logger: Logger,
        onReconnect: @escaping @Sendable () -> Void = {}, onMessage: @escaping MessageHandler
    ) {
        self.configuration = configuration
        let connector = RedisConnector(configuration: configuration)
        self.connectors = configuration.seeds.map(connector.node)
        self.channels = channels
        self.logger = logger
        self.onMessage = onMessage
        self.onReconnect = onReconnect
        self.loop = MultiThreadedEventLoopGroup.singleton.next()
        loop.execute { self.subscribe() }
    }

    /// Ends the subscription.
    public func close() {
        isClosed.store(true, ordering: .relaxed)
        loop.execute { [self] in
            if let (channel, handler) = channel { handler.close(channel, because: .shutdown) }
            channel = nil
        }
    }

    private func subscribe() {
        guard !isClosed.load(ordering: .relaxed) else { return }
        let connector = connectors[attempt % connectors.count]
        attempt += 1
        connector.connect(on: loop, delegate: self, extra: [RedisCommand("SUBSCRIBE", channels)]).whenComplete { [self] result in
            switch result {
            case .success(let (channel, handler)):
                guard !isClosed.load(ordering: .relaxed) else { return handler.close(channel, because: .shutdown) }
                self.channel = (channel, handler)
                backoff = .milliseconds(25)
                if subscribedBefore { onReconnect() }
                subscribedBefore = true
            case .failure(let error):
                retry(after: error)
            }
        }
    }

    private func retry(after error: any Error) {
        guard !isClosed.load(ordering: .relaxed) else { return }
        logger.warning("Redis subscription lost; resubscribing", metadata: ["error": "\(error)"])
        let delay = backoff
        backoff = min(backoff * 2, .seconds(1))
        loop.scheduleTask(in: TimeAmount(delay)) { [self] in subscribe() }
    }
}

extension RedisSubscriber: RedisChannelDelegate {
    func received(_ reply: RedisReply) {
        if case .error(let message) = reply, let (channel, handler) = channel {
            // e.g. NOPERM: the ACL user may not subscribe to these channels.
            return handler.close(channel, because: .server(message))
        }
        // ["message", channel, payload]; subscription confirmations are skipped.
        guard let parts = reply.array, parts.count == 3, parts[0].string == "message",
            let name = parts[1].string, case .bulkString(let payload) = parts[2]
        else { return }
        onMessage(name, payload)
    }

    func closed(_ error: RedisError?) {
        channel = nil
        retry(after: error ?? .connectionLost(endpoint: configuration.endpoint.description, reason: "closed"))
    }
}
