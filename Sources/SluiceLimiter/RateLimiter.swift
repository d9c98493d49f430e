import SluiceCore
import SluiceRedis

/// Exact, global GCRA rate limiting in Redis.
///
/// Every check is one `EVALSHA` of `lua/gcra.lua` covering all policies of a key, so any number of
/// replicas share one limit and a multi-policy check is all-or-nothing. Time is Redis' `TIME`, not
/// the replica's clock: replicas with skewed clocks still agree.
///
/// State lives under `<namespace>:{<key>}:<policy name>`. The hash tag `{<key>}` puts all state of
/// one API key in one Redis Cluster slot, which the multi-key script requires there.
public struct RateLimiter: Sendable {
    /// `lua/gcra.lua`, embedded at build time; nothing reads `lua/` at run time.
    public static let script = RedisScript(name: "gcra", source: PackageResources.gcra_lua)

    public let client: any RedisCommands
    public let namespace: String
    /// When set, requests that earlier replies prove Redis would deny are denied without a call.
    public let localDenial: LocalDenial?

    public init(client: any RedisCommands, namespace: String = Keyspace.rateLimits, localDenial: LocalDenial? = nil) {
        self.client = client
        self.namespace = namespace
        self.localDenial = localDenial
    }

    /// Checks `cost` requests for `key` against every policy; admits and charges all of them, or none.
    ///
    /// A cost of 0 inspects the state without changing it. With a `horizon`, a request that would
    /// be denied but whose slot comes within the horizon is reserved instead: charged exactly like
    /// an admission, with ``Decision/delay`` saying when to serve it.
    public func check(key: String, policies: [Policy], cost: Int = 1, horizon: Duration = .zero) async throws(RateLimitError) -> Decision {
        try validate(key: key, policies: policies, cost: cost)
        guard horizon >= .zero else { throw .invalidArguments("horizon must be >= 0") }
        var leading = false
        if let localDenial {
            // At most a few rounds: each wait ends with a reply that moved the bounds.
            decide: for round in 0..<3 {
                switch localDenial.path(key: key, policies: policies, cost: cost, horizon: horizon, epoch: client.layoutEpoch) {
                case .denied(let decision): return decision
                case .call(let isLeading):
                    leading = isLeading
                    break decide
                case .wait:
                    if round == 2 { break decide }
                    await localDenial.waitForCall(key)
                }
            }
        }
        defer { if leading { localDenial?.finish(key) } }
        let sentAt = ContinuousClock.now
        let keys = policies.map { redisKey(for: key, policy: $0) }
        var arguments = policies.flatMap { [String($0.burst), String($0.rate), $0.periodArgument, String(cost)] }
        if horizon > .zero { arguments.append(Policy.secondsArgument(horizon)) }
        let reply = try await client.evaluate(Self.script, keys: keys, arguments: arguments, failing: RateLimitError.self)
        var decision = try Self.decode(reply, policies: policies, cost: cost)
        decision.key = key
        localDenial?.record(key: key, decision: decision, sentAt: sentAt, epoch: client.layoutEpoch)
        return decision
    }

    /// The denial Redis would certainly answer for this check, proven from earlier replies
    /// without a call (``LocalDenial``); `nil` when only Redis can decide.
    public func provenDenial(key: String, policies: [Policy], cost: Int = 1, horizon: Duration = .zero) -> Decision? {
        localDenial?.denial(key: key, policies: policies, cost: cost, horizon: horizon, epoch: client.layoutEpoch)
    }

    /// Forgets the state of `key` for these policies (back to full burst).
    public func reset(key: String, policies: [Policy]) async throws(RateLimitError) {
        try validate(key: key, policies: policies, cost: 0)
        localDenial?.invalidate(key)
        _ = try await client.send(RedisCommand("DEL", policies.map { redisKey(for: key, policy: $0) }), failing: RateLimitError.self)
    }

    /// The Redis key holding one policy's state for `key`.
    public func redisKey(for key: String, policy: Policy) -> String {
        Keyspace.rateLimit(key, policy: policy.name, namespace: namespace)
    }

    private func validate(key: String, policies: [Policy], cost: Int) throws(RateLimitError) {
        // Byte-wise: `String.contains(String)` would go through Foundation's substring search.
        guard !key.isEmpty, key.utf8.count <= 128,
            !key.utf8.contains(where: { $0 == UInt8(ascii: "{") || $0 == UInt8(ascii: "}") })
        else {
            throw .invalidArguments("key must be 1-128 characters without braces")
        }
        guard !policies.isEmpty else { throw .invalidArguments("at least one policy is required") }
        guard policies.count == 1 || Set(policies.map(\.name)).count == policies.count else {
            throw .invalidArguments("policy names must be unique")
        }
        for policy in policies {
            if let problem = policy.validationError { throw .invalidArguments("\(policy.name): \(problem)") }
        }
        guard cost >= 0 else { throw .invalidArguments("cost must be >= 0") }
    }

    /// Decodes the script's reply (see the contract at the top of `lua/gcra.lua`): the decisive
    /// policy's fields, then three per policy, then (from newer scripts) the delay and Redis' time.
    static func decode(_ reply: RedisReply, policies: [Policy], cost: Int) throws(RateLimitError) -> Decision {
        do throws(RedisError) {
            var fields = try ReplyFields(reply, of: "gcra")
            try fields.expect(5 + 3 * policies.count, atLeast: true)
            let allowed = try fields.int(), remaining = try fields.int()
            let retryAfter = try fields.double(), resetAfter = try fields.double()
            let decisive = try fields.int()
            guard policies.indices.contains(decisive - 1) else { throw fields.mismatch("a policy index at field 4") }
            var perPolicy: [(remaining: Int, retry: Double, reset: String)] = []
            for _ in policies {
                let remaining = try fields.int(), retry = try fields.double(), reset = try fields.string()
                guard Double(reset) != nil else { throw fields.mismatch("a number at field \(fields.position - 1)") }
                perPolicy.append((remaining, retry, reset))
            }
            let delay = fields.remaining > 0 ? try fields.next().double ?? 0 : 0
            let decidedAt = fields.remaining > 0 ? try fields.next().int.map(Int64.init) ?? 0 : 0
            let states = zip(policies, perPolicy).map { policy, state in
                Decision.PolicyState(
                    policy: policy,
                    remaining: state.remaining,
                    retryAfter: state.retry < 0 ? nil : .seconds(state.retry),
                    resetAfter: .seconds(Double(state.reset) ?? 0),
                    // Parsed from the digits, not the Double: a TAT one µs high would not be a bound.
                    tat: decidedAt + (Self.microseconds(state.reset) ?? 0)
                )
            }
            let policy = policies[decisive - 1]
            // A cost of 0 is never "admitted" by the script (allowed = cost = 0) but is not a denial.
            let isAllowed = cost == 0 ? retryAfter < 0 : allowed > 0
            return Decision(
                isAllowed: isAllowed,
                policy: policy,
                remaining: remaining,
                retryAfter: isAllowed || cost > policy.burst ? nil : .seconds(retryAfter),
                resetAfter: .seconds(resetAfter),
                states: states,
                delay: .microseconds(Int64((delay * 1_000_000).rounded())),
                decidedAt: decidedAt
            )
        } catch {
            throw .redis(error)
        }
    }

    /// Exact µs of a non-negative `"%.6f"` seconds string of the script; `nil` for anything else.
    static func microseconds(_ text: String) -> Int64? {
        let parts = text.utf8.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        guard parts.count == 2, let whole = Int64(Substring(parts[0])), whole >= 0, parts[1].count == 6,
            let fraction = Int64(Substring(parts[1])), fraction >= 0
        else { return nil }
        return whole * 1_000_000 + fraction
    }
}
