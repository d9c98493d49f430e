/// Everything that can go wrong talking to Redis.
///
/// Messages name the endpoint and the user, never the password.
public enum RedisError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The TCP or unix-socket connection could not be established.
    case cannotConnect(endpoint: String, reason: String)
    /// The TLS handshake failed: an untrusted or mismatched certificate, a server that speaks no
    /// TLS, or a client certificate it refused. Retrying soon will not help.
    case tlsFailed(endpoint: String, reason: String)
    /// Redis refused the credentials (`WRONGPASS`) or required some (`NOAUTH`).
    case authenticationFailed(endpoint: String, user: String?, reason: String)
    /// No reply arrived within the command timeout; the connection is dropped and re-established.
    case timedOut(endpoint: String)
    /// The connection broke while the command was in flight; whether it ran is unknown.
    case connectionLost(endpoint: String, reason: String)
    /// Redis answered with an error reply, e.g. `ERR gcra: rate must be an integer >= 1`.
    case server(String)
    /// Too many commands are already queued for this client: back off and retry later.
    case backPressure(queued: Int)
    /// The reply did not have the shape the caller expected.
    case unexpectedReply(String)
    /// The URL or configuration is not usable.
    case invalidConfiguration(String)
    /// The client was shut down.
    case shutdown
    /// Redis Cluster: no master serves this slot (the cluster is incomplete or being rebuilt).
    case unavailableSlot(Int)
    /// Redis Cluster: the command's keys lie in different slots; refused before sending.
    case crossSlot(command: String, keys: [String])

    public var description: String {
        switch self {
        case .cannotConnect(let endpoint, let reason):
            "cannot connect to Redis at \(endpoint): \(reason)"
        case .tlsFailed(let endpoint, let reason):
            "TLS to Redis at \(endpoint) failed: \(reason)"
        case .authenticationFailed(let endpoint, let user, let reason):
            "Redis at \(endpoint) refused authentication as user '\(user ?? "default")': \(reason)"
        case .timedOut(let endpoint):
            "Redis at \(endpoint) did not answer within the command timeout"
        case .connectionLost(let endpoint, let reason):
            "connection to Redis at \(endpoint) lost: \(reason)"
        case .server(let message):
            "Redis error: \(message)"
        case .backPressure(let queued):
            "Redis client overloaded: \(queued) commands already queued"
        case .unexpectedReply(let what):
            "unexpected Redis reply: \(what)"
        case .invalidConfiguration(let what):
            "invalid Redis configuration: \(what)"
        case .shutdown:
            "Redis client is shut down"
        case .unavailableSlot(let slot):
            "no Redis Cluster master serves slot \(slot)"
        case .crossSlot(let command, let keys):
            "\(command) names keys in different Redis Cluster slots: \(keys.joined(separator: ", "))"
        }
    }

    /// Redis refused a write because it reached `maxmemory` under `noeviction` (`OOM …`): nothing
    /// can be stored until an operator frees memory or raises the limit; retrying soon won't help.
    public var isOutOfMemory: Bool {
        if case .server(let message) = self { return message.hasPrefix("OOM ") || message.contains(" OOM command not allowed") }
        return false
    }

    /// True for errors after which the same command may succeed on a healthy connection
    /// (the service maps these to `503`).
    public var isUnavailable: Bool {
        switch self {
        case .cannotConnect, .timedOut, .connectionLost, .backPressure, .shutdown, .unavailableSlot: true
        case .authenticationFailed, .tlsFailed, .server, .unexpectedReply, .invalidConfiguration, .crossSlot: false
        }
    }
}

/// An error of a Redis-backed store (limiter, queue, keys, models) that may wrap a ``RedisError``:
/// lets callers tell "Redis is unreachable" from "Redis is full" without knowing each store.
public protocol RedisBackedError: Error {
    /// The Redis failure behind this error, if it is one.
    var redisCause: RedisError? { get }
    /// The store's error for a failed Redis call (its `.redis` case).
    static func redis(_ error: RedisError) -> Self
}

extension RedisError: RedisBackedError {
    public var redisCause: RedisError? { self }
    public static func redis(_ error: RedisError) -> RedisError { error }
}
