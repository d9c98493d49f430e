import Synchronization

/// A Lua script run with `EVALSHA`.
///
/// The SHA1 is learnt from `SCRIPT LOAD` on first use and cached; when Redis answers `NOSCRIPT`
/// (restarted, failed over or `SCRIPT FLUSH`ed) ``RedisClient/evaluate(_:_:)`` falls
/// back to `EVAL` of the source, invisibly to the caller.
public final class RedisScript: Sendable {
    public let name: String
    public let source: [UInt8]
    private let cachedSHA = Mutex<String?>(nil)

    public init(name: String, source: [UInt8]) {
        self.name = name
        self.source = source
    }

    public convenience init(name: String, source: String) {
        self.init(name: name, source: Array(source.utf8))
    }

    var sha: String? { cachedSHA.withLock { $0 } }

    func remember(sha: String) { cachedSHA.withLock { $0 = sha } }
}
