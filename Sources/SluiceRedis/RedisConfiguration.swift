import NIOSSL
import SluiceSecrets
import Synchronization

/// Where and how to connect to Redis.
///
/// Built from a URL, `redis[s]://[user:password@]host:port[/db]` or `unix:///path/to/socket[?db=N]`.
/// The password is kept out of `description`, so a configuration can be logged as a whole.
public struct RedisConfiguration: Sendable, CustomStringConvertible {
    public enum Endpoint: Sendable, Hashable, CustomStringConvertible {
        case tcp(host: String, port: Int)
        case unix(path: String)

        public var description: String {
            switch self {
            case .tcp(let host, let port): host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
            case .unix(let path): "unix:\(path)"
            }
        }
    }

    /// One Redis, or a Redis Cluster reached through ``seeds``.
    public enum Mode: String, Sendable, CaseIterable {
        case single, cluster
    }

    public var endpoint: Endpoint
    /// Every host of the URL (`redis://h1:7000,h2:7000`); the first is ``endpoint``. In cluster
    /// mode the nodes the cluster's layout is first asked from.
    public var seeds: [Endpoint]
    public var mode: Mode = .single
    /// Redis 6 ACL user; `nil` authenticates as `default` (password only) or not at all.
    public var username: String?
    /// Never logged, never part of an error message: a `Secret` prints as `<redacted>`.
    public var password: Secret?
    public var database: Int
    /// TLS settings (`rediss://`); `nil` is plain TCP or a unix socket.
    public var tls: RedisTLS?
    /// Bounds connecting: TCP, the TLS handshake and authentication together.
    public var connectTimeout: Duration
    /// Bounds every round trip; a connection that exceeds it is dropped and re-established.
    public var commandTimeout: Duration
    /// Connections in the pool: about one per core (more only adds contention).
    public var connections: Int
    /// Commands written per round trip at most.
    public var maxBatch: Int
    /// Commands that may wait per connection before callers get ``RedisError/backPressure(queued:)``.
    public var maxQueued: Int
    /// Each command sent within a trace becomes a client span (`redis <COMMAND>`) of it. Off
    /// unless tracing is on: the command's name is then decoded for every traced call.
    public var traced = false
    /// What ``RedisClient/rotate(to:)`` and ``RedisClient/reloadTLS()`` took since start-up.
    /// A reference: every copy of this configuration (the client's, a subscriber's, each cluster
    /// node's) connects with the rotated credentials from then on.
    var rotated = RotatedCredentials()

    public init(
        endpoint: Endpoint,
        username: String? = nil,
        password: String? = nil,
        database: Int = 0,
        tls: RedisTLS? = nil,
        connectTimeout: Duration = .seconds(1),
        commandTimeout: Duration = .seconds(1),
        connections: Int = 2,
        maxBatch: Int = 256,
        maxQueued: Int = 16_384
    ) {
        self.endpoint = endpoint
        self.seeds = [endpoint]
        self.username = username
        self.password = password.map(Secret.init)
        self.database = database
        self.tls = tls
        self.connectTimeout = connectTimeout
        self.commandTimeout = commandTimeout
        self.connections = connections
        self.maxBatch = maxBatch
        self.maxQueued = maxQueued
    }

    /// Parses `redis://[user:password@]host[:port][/db]`, the same with `rediss://` (TLS, verified
    /// against the system's trust store until ``tls`` says otherwise) or `unix:///path[?db=N]`.
    ///
    /// `password` is used when the URL carries none (e.g. read from `REDIS_PASSWORD` or
    /// `REDIS_PASSWORD_FILE` by the caller).
    public init(url: String, password fallbackPassword: String? = nil) throws(RedisError) {
        guard let schemeEnd = url.range(of: "://") else {
            throw .invalidConfiguration("expected redis://host:port or unix:///path, got a value without a scheme")
        }
        let scheme = url[..<schemeEnd.lowerBound].lowercased()
        var rest = Substring(url[schemeEnd.upperBound...])
        switch scheme {
        case "unix":
            var database = 0
            if let query = rest.firstIndex(of: "?") {
                for item in rest[rest.index(after: query)...].split(separator: "&") {
                    let pair = item.split(separator: "=", maxSplits: 1)
                    if pair.count == 2, pair[0] == "db" {
                        guard let db = Int(pair[1]), db >= 0 else { throw .invalidConfiguration("db must be a number >= 0") }
                        database = db
                    }
                }
                rest = rest[..<query]
            }
            guard rest.hasPrefix("/") else { throw .invalidConfiguration("unix socket path must be absolute") }
            self.init(endpoint: .unix(path: String(rest)), password: fallbackPassword, database: database)
        case "redis", "rediss":
            var username: String?
            var password: String?
            if let at = rest.lastIndex(of: "@") {
                let userinfo = rest[..<at]
                rest = rest[rest.index(after: at)...]
                if let colon = userinfo.firstIndex(of: ":") {
                    let user = try Self.percentDecoded(userinfo[..<colon])
                    username = user.isEmpty ? nil : user
                    // `redis://user:@host`: the user here, the password from elsewhere.
                    let secret = try Self.percentDecoded(userinfo[userinfo.index(after: colon)...])
                    password = secret.isEmpty ? nil : secret
                } else {
                    // `redis://secret@host` is the classic password-only form.
                    password = try Self.percentDecoded(userinfo)
                }
            }
            var database = 0
            if let slash = rest.firstIndex(of: "/") {
                let db = rest[rest.index(after: slash)...]
                if !db.isEmpty {
                    guard let value = Int(db), value >= 0 else { throw .invalidConfiguration("database must be a number >= 0") }
                    database = value
                }
                rest = rest[..<slash]
            }
            let hosts = try rest.split(separator: ",", omittingEmptySubsequences: false).map { (part) throws(RedisError) -> Endpoint in
                let (host, port) = try Self.hostAndPort(part)
                return .tcp(host: host, port: port)
            }
            self.init(
                endpoint: hosts[0],
                username: username,
                password: password ?? fallbackPassword,
                database: database,
                tls: scheme == "rediss" ? RedisTLS() : nil
            )
            self.seeds = hosts
        default:
            throw .invalidConfiguration("unsupported scheme '\(scheme)'; expected redis://, rediss:// or unix://")
        }
    }

    public var description: String {
        let auth = password == nil ? "" : " (authenticated as \(username ?? "default"))"
        if mode == .cluster { return "cluster via \(seeds.map(\.description).joined(separator: ","))\(tls == nil ? "" : " over TLS")\(auth)" }
        return "\(endpoint) db \(database)\(tls == nil ? "" : " over TLS")\(auth)"
    }

    /// The user and password for the next connection: the rotated ones, else the configured ones.
    var currentCredentials: RedisCredentials? {
        rotated.credentials ?? password.map { RedisCredentials(username: username, password: $0) }
    }

    /// The settings for one node of a cluster (or one of the seeds): that endpoint alone.
    func node(_ endpoint: Endpoint) -> RedisConfiguration {
        var node = self
        node.endpoint = endpoint
        node.seeds = [endpoint]
        node.mode = .single
        return node
    }

    /// Reads the TLS files now, so that a bad path or PEM stops start-up with a clear message
    /// instead of failing every connection later.
    /// Also refuses what one mode cannot do: several hosts for one Redis, or a database other
    /// than 0 or a unix socket for a cluster.
    public func validate() throws(RedisError) {
        switch mode {
        case .single where seeds.count > 1:
            throw .invalidConfiguration("\(seeds.count) hosts in the URL: several nodes are a Redis Cluster (--redis-mode cluster)")
        case .cluster where database != 0:
            throw .invalidConfiguration("a Redis Cluster has only database 0")
        case .cluster where seeds.contains { if case .unix = $0 { true } else { false } }:
            throw .invalidConfiguration("a Redis Cluster is reached over TCP, not a unix socket")
        default: break
        }
        if let tls { _ = try tls.makeContext() }
    }

    private static func hostAndPort(_ text: Substring) throws(RedisError) -> (String, Int) {
        var host = text
        var portText: Substring?
        if host.hasPrefix("[") {  // [::1]:6379
            guard let close = host.firstIndex(of: "]") else { throw .invalidConfiguration("unterminated IPv6 address") }
            let after = host[host.index(after: close)...]
            host = host[host.index(after: host.startIndex)..<close]
            if after.hasPrefix(":") { portText = after.dropFirst() }
        } else if let colon = host.lastIndex(of: ":") {
            portText = host[host.index(after: colon)...]
            host = host[..<colon]
        }
        guard !host.isEmpty else { throw .invalidConfiguration("missing host") }
        var port = 6379
        if let portText {
            guard let value = Int(portText), (1...65535).contains(value) else {
                throw .invalidConfiguration("port must be 1-65535")
            }
            port = value
        }
        return (String(host), port)
    }

    private static func percentDecoded(_ text: Substring) throws(RedisError) -> String {
        var bytes: [UInt8] = []
        var iterator = Array(text.utf8).makeIterator()
        while let byte = iterator.next() {
            guard byte == UInt8(ascii: "%") else {
                bytes.append(byte)
                continue
            }
            guard let high = iterator.next().flatMap(Self.hexValue), let low = iterator.next().flatMap(Self.hexValue) else {
                throw .invalidConfiguration("bad percent-encoding in the URL's user or password")
            }
            bytes.append(high << 4 | low)
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}

/// An ACL user (`nil`: `default`) and its password.
public struct RedisCredentials: Sendable {
    public var username: String?
    public var password: Secret

    public init(username: String?, password: Secret) {
        self.username = username
        self.password = password
    }

    /// `AUTH [user] password`.
    var command: RedisCommand {
        username.map { RedisCommand("AUTH", $0, password.revealed) } ?? RedisCommand("AUTH", password.revealed)
    }
}

/// Credentials taken while the process runs, shared by the copies of one ``RedisConfiguration``.
final class RotatedCredentials: Sendable {
    private let state = Mutex<(credentials: RedisCredentials?, tls: NIOSSLContext?)>((nil, nil))

    /// The user and password as last rotated; `nil` until a rotation.
    var credentials: RedisCredentials? {
        get { state.withLock { $0.credentials } }
        set { state.withLock { $0.credentials = newValue } }
    }

    /// The TLS context built from the files as last reloaded; `nil` until a reload.
    var tls: NIOSSLContext? {
        get { state.withLock { $0.tls } }
        set { state.withLock { $0.tls = newValue } }
    }
}
