import Hummingbird
import NIOCore

/// Per-request context: the peer address (for per-client limits on failed authentication).
public struct SluiceRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    public let remoteAddress: SocketAddress?

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.remoteAddress = source.channel.remoteAddress
    }

    /// Bodies are read only up to this size (64 KiB); anything larger is a 413, detected while
    /// reading, before the body is buffered whole.
    public var maxUploadSize: Int { 64 * 1024 }
}
