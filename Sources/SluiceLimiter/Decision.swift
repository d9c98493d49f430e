import SluiceCore

/// The outcome of a rate-limit check over all policies of one key.
public struct Decision: Sendable, Equatable {
    /// The state of one policy after the check.
    public struct PolicyState: Sendable, Equatable {
        public var policy: Policy
        /// Requests this policy would still admit now.
        public var remaining: Int
        /// When this policy alone would admit the request; `nil` if it admits it now.
        public var retryAfter: Duration?
        /// Until this policy is back at full burst.
        public var resetAfter: Duration
        /// The policy's theoretical arrival time after the check, µs on Redis' clock: from a
        /// Redis reply exact, and a lower bound from then on (see ``LocalDenial``).
        public var tat: Int64 = 0
    }

    /// Who decided.
    public enum Origin: Sendable, Equatable {
        /// Redis, by running `gcra.lua`.
        case redis
        /// The replica, from what earlier replies prove (``LocalDenial``): always a denial.
        case localDenial
        /// The replica's own limiter while Redis is unreachable (degraded mode).
        case degraded
    }

    /// True when the request was admitted and charged to every policy.
    public var isAllowed: Bool
    /// The deciding policy: when denied the one with the longest wait, otherwise the one with the
    /// fewest remaining requests.
    public var policy: Policy
    public var remaining: Int
    /// When the same request could be admitted; `nil` when admitted, or when it never can be
    /// (its cost exceeds the deciding policy's burst).
    public var retryAfter: Duration?
    public var resetAfter: Duration
    /// Every policy, in the order given to the check.
    public var states: [PolicyState]
    /// How long until the admitted request's slot: zero when admitted now, positive when it was
    /// denied now but reserved within the check's horizon (serve it after this delay).
    public var delay: Duration = .zero
    /// The Redis time of the decision, in microseconds since the Unix epoch. `decidedAt + delay`
    /// is the request's slot on Redis' clock, the one clock every replica and worker shares.
    public var decidedAt: Int64 = 0
    /// Redis decided, or the replica did (a proven denial, or degraded mode).
    public var origin: Origin = .redis
    /// The limiter key the decision is about (an API key's id, or a client address's key).
    public var key = ""

    /// The slot of the admitted (or reserved) request: microseconds since the epoch, Redis clock.
    public var slotTime: Int64 { decidedAt + delay.microseconds }

    /// The deciding policy's burst: the most that can ever be admitted at once.
    public var limit: Int { policy.burst }
}
