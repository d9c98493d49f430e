import SluiceRedis
import Synchronization

/// Whether this replica should call Redis at all: opens after ``failureThreshold`` consecutive
/// failed or timed-out calls, or at once when Redis refuses or resets the connection, so that
/// while Redis is down requests stop waiting for it.
///
/// While open, requests do not call Redis; a background probe (``ReplicaHeartbeat``, every
/// ``ReplicaHeartbeat/interval``) is the half-open trial: its success closes the breaker.
public final class CircuitBreaker: Sendable {
    public enum State: Sendable, Equatable {
        /// Redis answers: every request asks it.
        case closed
        /// Redis failed ``CircuitBreaker/failureThreshold`` times in a row: requests skip it.
        case open
    }

    public let failureThreshold: Int
    private struct Counts {
        var state = State.closed
        var consecutiveFailures = 0
    }
    private let counts = Mutex(Counts())
    /// Called on every change of state (closed → open, open → closed), outside the lock.
    private let onChange: @Sendable (State) -> Void

    public init(failureThreshold: Int = 3, onChange: @escaping @Sendable (State) -> Void = { _ in }) {
        self.failureThreshold = failureThreshold
        self.onChange = onChange
    }

    public var state: State { counts.withLock { $0.state } }
    public var isOpen: Bool { state == .open }

    /// A call to Redis succeeded.
    public func recordSuccess() {
        let changed = counts.withLock { counts -> Bool in
            counts.consecutiveFailures = 0
            guard counts.state == .open else { return false }
            counts.state = .closed
            return true
        }
        if changed { onChange(.closed) }
    }

    /// A call to Redis failed with `error`: nothing for an error Redis itself answered (a script
    /// error, `OOM`, a bad reply); at once open for a connection refused or reset — nothing
    /// listens there, so the next call would fail as fast, and `local` keys are better served by
    /// the replica now than by a `503` (a timeout may be one slow command: it counts as one
    /// failure of ``failureThreshold``).
    public func record(_ error: RedisError) {
        switch error {
        case .cannotConnect, .connectionLost: recordFailure(outage: true)
        case _ where error.isUnavailable: recordFailure()
        default: break
        }
    }

    /// A call to Redis failed or timed out; with `outage`, the breaker opens at once.
    public func recordFailure(outage: Bool = false) {
        let changed = counts.withLock { counts -> Bool in
            counts.consecutiveFailures += 1
            guard counts.state == .closed, outage || counts.consecutiveFailures >= failureThreshold else { return false }
            counts.state = .open
            return true
        }
        if changed { onChange(.open) }
    }
}
