import Foundation
import Logging
import Synchronization

/// A Redis pub/sub subscription on a connection and thread of its own.
///
/// Messages are handed to `onMessage` on the subscriber's thread (keep it short). After a lost
/// connection the subscriber reconnects with backoff and subscribes again, then calls
/// `onReconnect`: messages published in between are lost, so a cache fed by them must be dropped.
public final class RedisSubscriber: Sendable {
    public typealias MessageHandler = @Sendable (_ channel: String, _ message: [UInt8]) -> Void

    private let configuration: RedisConfiguration
    private let channels: [String]
    private let logger: Logger
    private let onMessage: MessageHandler
    private let onReconnect: @Sendable () -> Void
    private let state = Mutex<(closed: Bool, descriptor: Int32?)>((false, nil))

    public init(
        configuration: RedisConfiguration, channels: [String], logger: Logger,
        onReconnect: @escaping @Sendable () -> Void = {}, onMessage: @escaping MessageHandler
    ) {
        self.configuration = configuration
        self.channels = channels
        self.logger = logger
        self.onMessage = onMessage
        self.onReconnect = onReconnect
        let thread = Thread { [self] in self.run() }
        thread.name = "sluice-redis-subscriber"
        thread.start()
    }

    /// Ends the subscription: shuts the socket down so the blocking read returns.
    public func close() {
        let descriptor = state.withLock { state in
            state.closed = true
            return state.descriptor
        }
        if let descriptor { shutdown(descriptor, Int32(SHUT_RDWR)) }
    }

    private var isClosed: Bool { state.withLock { $0.closed } }

    private func run() {
        let session = HiredisSession(configuration: configuration)
        var backoff = 0.025
        var subscribedBefore = false
        while !isClosed {
            do {
                try session.connect()
                try session.subscribe(channels)
                state.withLock { $0.descriptor = session.fileDescriptor }
                if subscribedBefore { onReconnect() }
                subscribedBefore = true
                backoff = 0.025
                while !isClosed {
                    // ["message", channel, payload]; subscription confirmations are skipped.
                    guard let parts = try session.nextPush().array, parts.count == 3, parts[0].string == "message",
                        let channel = parts[1].string, case .bulkString(let payload) = parts[2]
                    else { continue }
                    onMessage(channel, payload)
                }
            } catch {
                state.withLock { $0.descriptor = nil }
                session.close()
                guard !isClosed else { break }
                logger.warning("Redis subscription lost; resubscribing", metadata: ["error": "\(error)"])
                Thread.sleep(forTimeInterval: backoff)
                backoff = min(backoff * 2, 1)
            }
        }
        session.close()
    }
}
