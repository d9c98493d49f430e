import SluiceCore
import SluiceRedis

/// A deferred prediction request: queued by a replica, run by a worker when its slot comes.
public struct Job: Sendable, Equatable {
    public enum Status: String, Sendable {
        case queued, running, succeeded, failed

        /// True once the outcome is written: the job will not run again.
        public var isFinished: Bool { self == .succeeded || self == .failed }
    }

    public var id: JobID
    /// The API key that created the job; the only one that may read it.
    public var keyID: String
    /// The validated input, as JSON (for predictions: an array of feature rows).
    public var input: String
    public var status: Status
    /// The job's reserved rate-limit slot, µs since the epoch on Redis' clock: it never starts earlier.
    public var notBefore: Int64
    public var createdAt: Int64
    public var startedAt: Int64?
    public var completedAt: Int64?
    /// How many times a worker claimed it (more than 1 after a reclaim).
    public var attempts: Int
    /// The outcome as JSON when it succeeded.
    public var result: String?
    /// What went wrong when it failed.
    public var error: String?
}

/// A job id: 32 lowercase hex characters carrying 128 bits from the system CSPRNG, so that ids
/// cannot be guessed (reading a job also needs the key that created it).
public struct JobID: Sendable, Hashable, CustomStringConvertible {
    public let rawValue: String

    /// Accepts only the exact format, so that a path parameter never reaches Redis unchecked.
    public init?(_ text: some StringProtocol) {
        guard text.utf8.count == 32,
            text.utf8.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains($0) })
        else { return nil }
        rawValue = String(text)
    }

    public static func generate() -> JobID {
        var generator = SystemRandomNumberGenerator()
        let hex = (0..<2).map { _ in String(generator.next() as UInt64, radix: 16).leftPadded(to: 16) }.joined()
        return JobID(hex)!
    }

    public var description: String { rawValue }
}

/// Everything that can go wrong with the queue.
public enum QueueError: Error, Sendable, CustomStringConvertible {
    case redis(RedisError)
    case unexpectedReply(String)

    public var description: String {
        switch self {
        case .redis(let message): "queue unavailable: \(message)"
        case .unexpectedReply(let message): "unexpected reply from the queue scripts: \(message)"
        }
    }
}

extension QueueError: RedisBackedError {
    public var redisCause: RedisError? {
        if case .redis(let error) = self { return error }
        return nil
    }
}
