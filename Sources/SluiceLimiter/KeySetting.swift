/// One setting of a key's plan, declared once: its JSON field (and so its CLI flag), kind,
/// default, bounds, the overflow modes it goes with, the rule a bad value is refused with and the
/// line that documents it. Key bodies (`POST`/`PATCH /v1/keys`) validate with it, ``KeyPlan``
/// takes its defaults from it, `sluice keys` takes its flags' help from it, and a test holds
/// `openapi.yaml` and the README to it.
public struct KeySetting: Sendable {
    /// What a JSON value of the setting may be.
    public enum Kind: Sendable, Equatable {
        case integer
        case number
        /// One of these strings.
        case choice([String])
    }

    /// A default as JSON shows it.
    public enum Default: Sendable, Equatable {
        case number(Double)
        case text(String)
    }

    /// The JSON field, e.g. `max_delay`.
    public let field: String
    public let kind: Kind
    /// `nil`: absent means "none" (no quota, no limit in flight).
    public let defaultValue: Default?
    /// Bounds of a number: `minimum` (exclusive when `exclusiveMinimum`) and `maximum`.
    public let minimum: Double?
    public let exclusiveMinimum: Bool
    public let maximum: Double?
    /// The overflow modes the setting goes with; `nil`: any.
    public let modes: [KeyPlan.Overflow]?
    /// What a value must be: the `detail` of a refusal of this field.
    public let rule: String
    /// What the setting does, in one line (CLI help, docs).
    public let summary: String

    init(
        _ field: String, _ kind: Kind, default defaultValue: Default? = nil, minimum: Double? = nil, exclusiveMinimum: Bool = false,
        maximum: Double? = nil, modes: [KeyPlan.Overflow]? = nil, rule: String, summary: String
    ) {
        self.field = field
        self.kind = kind
        self.defaultValue = defaultValue
        self.minimum = minimum
        self.exclusiveMinimum = exclusiveMinimum
        self.maximum = maximum
        self.modes = modes
        self.rule = rule
        self.summary = summary
    }

    /// The JSON Pointer of the field in a key body.
    public var pointer: String { "/" + field }

    /// `--max-delay` for `max_delay`.
    public var flag: String { "--" + field.replacingUnderscores }

    /// Whether a number lies within the bounds.
    public func accepts(_ value: Double) -> Bool {
        if let minimum, exclusiveMinimum ? !(value > minimum) : !(value >= minimum) { return false }
        if let maximum, !(value <= maximum) { return false }
        return true
    }

    /// Whether the setting goes with a key of this overflow mode.
    public func goes(with overflow: KeyPlan.Overflow) -> Bool { modes?.contains(overflow) ?? true }

    /// The refusal's detail when given with another overflow mode.
    public var modeRule: String {
        let modes = (modes ?? []).map { "\"\($0.rawValue)\"" }.joined(separator: " or ")
        return "only with \"overflow\": \(modes)"
    }

    /// The default as the docs and `--help` show it (`1`, `reject`); `nil` when there is none.
    public var defaultText: String? {
        switch defaultValue {
        case .number(let value): value == value.rounded() ? String(Int(value)) : String(value)
        case .text(let text): text
        case nil: nil
        }
    }

    /// The line that documents the setting: what it does, its rule, its default (`--help`, and
    /// the list in `docs/configuration.md`, which a test holds to it).
    public var help: String {
        "\(summary) \(rule.prefix(1).uppercased() + rule.dropFirst())\(defaultText.map { "; default \($0)" } ?? "")."
    }

    var defaultNumber: Double {
        guard case .number(let value) = defaultValue else { preconditionFailure("\(field) has no numeric default") }
        return value
    }
}

extension KeySetting {
    public static let quotaPerDay = KeySetting(
        "quota_per_day", .integer, minimum: 1, maximum: Double(Policy.maximumOffset - 1),
        rule: "must be at least 1 and below 2^51",
        summary: "Requests per rolling day (a 24 h GCRA policy named `daily`); absent: no quota.")
    public static let overflow = KeySetting(
        "overflow", .choice(KeyPlan.Overflow.allCases.map(\.rawValue)), default: .text(KeyPlan.Overflow.reject.rawValue),
        rule: "reject, delay or queue",
        summary: "What a request over the limit gets: a 429, a hold until its slot, or a place in the queue (202; a worker runs it at its slot).")
    public static let maxDelay = KeySetting(
        "max_delay", .number, default: .number(1), minimum: 0, exclusiveMinimum: true, maximum: 30, modes: [.delay],
        rule: "seconds, more than 0 and at most 30",
        summary: "delay: seconds a request may be held (longer would outlast load balancers' and clients' timeouts).")
    public static let maxQueueDelay = KeySetting(
        "max_queue_delay", .number, default: .number(60), minimum: 0, exclusiveMinimum: true, maximum: 86_400, modes: [.queue],
        rule: "seconds, more than 0 and at most 86400",
        summary: "queue: seconds ahead a slot may be queued.")
    public static let maxDepth = KeySetting(
        "max_depth", .integer, default: .number(1000), minimum: 1, maximum: 1_000_000, modes: [.queue, .delay],
        rule: "between 1 and 1000000",
        summary: "delay or queue: jobs pending per key at once.")
    public static let retryAfterJitter = KeySetting(
        "retry_after_jitter", .number, default: .number(0), minimum: 0, maximum: 60,
        rule: "seconds, from 0 to 60",
        summary: "Seconds of uniform random extra on Retry-After (never earlier than the true wait).")
    public static let maxInFlight = KeySetting(
        "max_in_flight", .integer, minimum: 1, maximum: 1_000_000,
        rule: "between 1 and 1000000 requests in flight",
        summary: "Requests of the key served at once across all replicas; absent: no limit.")
    public static let onRedisFailure = KeySetting(
        "on_redis_failure", .choice(KeyPlan.RedisFailureMode.allCases.map(\.rawValue)),
        default: .text(KeyPlan.RedisFailureMode.closed.rawValue),
        rule: "\"local\" only for keys whose only scope is \"predict\"; others fail closed",
        summary: "While Redis is unreachable: `closed` (503) or `local` (predict-only keys: each replica's share of the limits).")

    /// Every setting of a key's plan, in the order the docs list them.
    public static let all: [KeySetting] = [quotaPerDay, overflow, maxDelay, maxQueueDelay, maxDepth, retryAfterJitter, maxInFlight, onRedisFailure]
}

extension String {
    fileprivate var replacingUnderscores: String { String(map { $0 == "_" ? "-" : $0 }) }
}
