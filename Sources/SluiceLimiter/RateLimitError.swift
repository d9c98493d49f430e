import SluiceRedis

/// Why a rate-limit check could not reach a decision.
///
/// The service treats every case as fail-secure: no decision, no service.
public enum RateLimitError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The policies or the cost are not usable (also caught by the script itself).
    case invalidArguments(String)
    /// Redis could not be asked, or answered with an error.
    case redis(RedisError)

    public var description: String {
        switch self {
        case .invalidArguments(let what): "invalid rate-limit arguments: \(what)"
        case .redis(let error): "rate limiter unavailable: \(error)"
        }
    }
}

extension RateLimitError: RedisBackedError {
    public var redisCause: RedisError? {
        if case .redis(let error) = self { return error }
        return nil
    }
}
