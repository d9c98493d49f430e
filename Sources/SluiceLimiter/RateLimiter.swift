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

    /// What the calls of a limiter key repeat (``callCache(for:policies:usage:)``); shared by the
    /// copies of this limiter.
    private let calls = SharedLRUCache<String, CallCache>(capacity: 4096)

    /// Made once per limiter key, policy set and day: the call's Redis keys, and the whole encoded
    /// call for the last cost and horizon asked without floors or request id (the usual call: a
    /// key's requests mostly cost the same), so that such a call builds no strings and encodes
    /// nothing. Its arguments follow from exactly what is compared: the policies (all their
    /// values), the cost, the horizon and whether usage is counted.
    private struct CallCache {
        var policies: [Policy]
        var usage: [String]
        var day: Int
        var keys: [String]
        var usual: (cost: Int, horizon: Duration, call: ScriptCall)?
    }

    /// Checks `cost` requests for `key` against every policy; admits and charges all of them, or none.
    ///
    /// A cost of 0 inspects the state without changing it. With a `horizon`, a request that would
    /// be denied but whose slot comes within the horizon is reserved instead: charged exactly like
    /// an admission, with ``Decision/delay`` saying when to serve it.
    ///
    /// With `usage`, the same call counts the decision for usage metering (see `lua/gcra.lua`): in
    /// one hash per tag (`""`: the limiter key itself; `k:<id>`, `t` under a tenant's) and UTC day,
    /// at `sluice:usage:{<key>}[:<tag>]:<day>`.
    ///
    /// With a `requestID` (the client's `Idempotency-Key`, say), a retry of a call whose reply was
    /// lost is answered the first decision again and charged nothing (recorded ``requestLifetime``).
    /// Every call also sends what earlier replies proved about the key's TATs as floors (see
    /// ``LocalDenial/floorArgument(_:policies:now:)``): a Redis Cluster failover that lost the old master's
    /// last writes is repaired by the next call of any replica that saw one of them.
    public func check(
        key: String, policies: [Policy], cost: Int = 1, horizon: Duration = .zero, usage: [String] = [], requestID: String? = nil
    ) async throws(RateLimitError) -> Decision {
        try validate(key: key, policies: policies, cost: cost)
        guard horizon >= .zero else { throw .invalidArguments("horizon must be >= 0") }
        var leading = false
        var floor: String?
        if let localDenial {
            // At most a few rounds: each wait ends with a reply that moved the bounds.
            decide: for round in 0..<3 {
                switch localDenial.path(key: key, policies: policies, cost: cost, horizon: horizon, epoch: client.layoutEpoch) {
                case .denied(let decision): return decision
                case .call(let isLeading, let proven):
                    leading = isLeading
                    floor = proven
                    break decide
                case .wait(let proven):
                    floor = proven
                    if round == 2 { break decide }
                    await localDenial.waitForCall(key)
                }
            }
        }
        defer { if leading { localDenial?.finish(key) } }
        let sentAt = ContinuousClock.now
        let call: ScriptCall
        if floor == nil, requestID == nil {
            call = usualCall(for: key, policies: policies, cost: cost, horizon: horizon, usage: usage)
        } else {
            var keys = callCache(for: key, policies: policies, usage: usage).keys
            var arguments = Self.arguments(policies: policies, cost: cost, horizon: horizon, usage: !usage.isEmpty, floors: floor)
            if let requestID {
                keys.append(Keyspace.limiterRequest(key, id: requestID, namespace: namespace))
                arguments.append("r:" + String(Self.requestLifetime.microseconds / 1000))
            }
            call = ScriptCall(keys: keys, arguments: arguments)
        }
        let reply = try await client.evaluate(Self.script, call, failing: RateLimitError.self)
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

    /// The call cache of `key` for these policies and usage tags, today.
    private func callCache(for key: String, policies: [Policy], usage: [String]) -> CallCache {
        let day = usage.isEmpty ? 0 : UsageDay.today()
        if let known = calls.get(key), known.day == day, known.usage == usage, known.policies == policies { return known }
        let keys = policies.map { redisKey(for: key, policy: $0) } + usage.map { Keyspace.usage(key, tag: $0, day: day) }
        let made = CallCache(policies: policies, usage: usage, day: day, keys: keys)
        calls.set(key, made)
        return made
    }

    /// The encoded call without floors or request id, remembered for the key's next one.
    private func usualCall(for key: String, policies: [Policy], cost: Int, horizon: Duration, usage: [String]) -> ScriptCall {
        var cache = callCache(for: key, policies: policies, usage: usage)
        if let usual = cache.usual, usual.cost == cost, usual.horizon == horizon { return usual.call }
        let call = ScriptCall(
            keys: cache.keys, arguments: Self.arguments(policies: policies, cost: cost, horizon: horizon, usage: !usage.isEmpty))
        cache.usual = (cost, horizon, call)
        calls.set(key, cache)
        return call
    }

    /// How long a call with a request id is remembered: long enough for a client's retry after a
    /// `503`, short enough that the records cost Redis little memory.
    public static let requestLifetime: Duration = .seconds(60)

    /// `u:<cost>:<flags>`: usage metering's argument, a flag per policy, `1` for a daily quota.
    static func usageArgument(policies: [Policy], cost: Int) -> String {
        var argument = "u:" + String(cost) + ":"
        for policy in policies { argument += policy.name == Policy.dailyName ? "1" : "0" }
        return argument
    }

    /// The Redis key holding one policy's state for `key`.
    public func redisKey(for key: String, policy: Policy) -> String {
        Keyspace.rateLimit(key, policy: policy.stateName, namespace: namespace)
    }

    private func validate(key: String, policies: [Policy], cost: Int) throws(RateLimitError) {
        // Byte-wise: `String.contains(String)` would go through Foundation's substring search.
        guard !key.isEmpty, key.utf8.count <= 128,
            !key.utf8.contains(where: { $0 == UInt8(ascii: "{") || $0 == UInt8(ascii: "}") })
        else {
            throw .invalidArguments("key must be 1-128 characters without braces")
        }
        guard !policies.isEmpty else { throw .invalidArguments("at least one policy is required") }
        guard policies.count == 1 || Set(policies.map(\.stateName)).count == policies.count else {
            throw .invalidArguments("policy names must be unique")
        }
        for policy in policies {
            if let problem = policy.validationError { throw .invalidArguments("\(policy.name): \(problem)") }
        }
        guard cost >= 0 else { throw .invalidArguments("cost must be >= 0") }
    }

    /// The script's arguments: per policy its charge (interval × cost) and allowance (interval ×
    /// burst, plus the horizon), integer µs in hexadecimal (see `lua/gcra.lua`); then the options:
    /// usage metering's argument with `usage`, and `floors` (``LocalDenial/floorArgument(_:policies:now:)``).
    ///
    /// A cost above some policy's burst can never be admitted, however long it waits: it is sent
    /// without the horizon, so the script denies it instead of reserving it. An allowance beyond
    /// the script's 2^51 µs bound (a horizon of decades) is cut to the bound.
    public static func arguments(
        policies: [Policy], cost: Int, horizon: Duration = .zero, usage: Bool = false, floors: String? = nil
    ) -> [String] {
        let reservable = policies.allSatisfy { cost <= $0.burst }
        let horizon = reservable ? min(horizon.microseconds, Policy.maximumOffset) : 0
        var arguments: [String] = []
        arguments.reserveCapacity(2 * policies.count + 2)
        for policy in policies {
            let interval = policy.emissionIntervalMicroseconds
            let (charge, overflow) = interval.multipliedReportingOverflow(by: Int64(cost))
            arguments.append(String(overflow ? Policy.maximumOffset : charge, radix: 16))
            let allowance = min(policy.toleranceMicroseconds + horizon, Policy.maximumOffset - 1)
            arguments.append(String(allowance, radix: 16))
        }
        if usage { arguments.append(usageArgument(policies: policies, cost: cost)) }
        if let floors { arguments.append(floors) }
        return arguments
    }

    /// Decodes the script's reply (see the contract at the top of `lua/gcra.lua`): whether it
    /// admitted, Redis' time and each policy's TAT with the request charged. Everything else
    /// follows from those and the policies' own interval and burst, exactly as the script decides:
    /// a policy admits a request of cost `c` at `now` when `tat + interval × c − tolerance <= now`.
    @_spi(Benchmarks) public static func decode(_ reply: RedisReply, policies: [Policy], cost: Int) throws(RateLimitError) -> Decision {
        do throws(RedisError) {
            var fields = try ReplyIntegers(reply, of: "gcra")
            let admitted = try fields.next()
            guard admitted == 0 || admitted == 1 else { throw fields.mismatch("0 or 1 at field 0") }
            let isAllowed = admitted == 1
            let seconds = try fields.next(), micros = try fields.next()
            guard seconds >= 0, (0..<1_000_000).contains(micros) else { throw fields.mismatch("Redis' TIME at fields 1 and 2") }
            let now = seconds * 1_000_000 + micros
            var states: [Decision.PolicyState] = []
            states.reserveCapacity(policies.count)
            // When admitted: the policy with the fewest remaining; when denied: the longest wait.
            var decisive = 0
            var delay: Int64 = 0, longestWait: Int64 = 0
            for (index, policy) in policies.enumerated() {
                let interval = policy.emissionIntervalMicroseconds, tolerance = policy.toleranceMicroseconds
                let charged = try fields.next()
                // The policy's TAT after the call: a denial charged nothing.
                let tat = isAllowed ? charged : charged - interval * Int64(cost)
                guard tat >= now else { throw fields.mismatch("a TAT no earlier than Redis' time at field \(fields.position - 1)") }
                // How long the charged request waits for room (<= 0: none).
                let wait = charged - tolerance - now
                let room = now - (tat - tolerance)
                let remaining = room < 0 ? 0 : Int(room / interval)
                if isAllowed {
                    // A reservation's slot is when its last policy has room for it.
                    delay = max(delay, wait)
                    if index == 0 || remaining < states[decisive].remaining { decisive = index }
                } else if wait > longestWait {
                    longestWait = wait
                    decisive = index
                }
                states.append(
                    Decision.PolicyState(
                        policy: policy, remaining: remaining, retryAfter: !isAllowed && wait > 0 ? .microseconds(wait) : nil,
                        resetAfter: .microseconds(tat - now), tat: tat))
            }
            try fields.end()
            let policy = policies[decisive]
            return Decision(
                isAllowed: isAllowed,
                policy: policy,
                remaining: states[decisive].remaining,
                retryAfter: isAllowed || cost > policy.burst ? nil : states[decisive].retryAfter,
                resetAfter: states[decisive].resetAfter,
                states: states,
                delay: .microseconds(delay),
                decidedAt: now
            )
        } catch {
            throw .redis(error)
        }
    }
}
