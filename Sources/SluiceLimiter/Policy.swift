import SluiceCore

/// A GCRA rate-limit policy: `rate` requests per `period`, with bursts of up to `burst`.
///
/// Encoded as `{"name": "default", "rate": 10, "period": 1, "burst": 20}` (period in seconds).
/// A daily quota is a policy too: `rate` = `burst` = the quota, `period` = 86 400 s (a rolling day).
public struct Policy: Sendable, Hashable, Codable {
    /// Names the policy in Redis keys and in `RateLimit` headers: `[a-z0-9_-]{1,32}`.
    public var name: String
    /// Requests admitted per period, ≥ 1.
    public var rate: Int
    public var period: Duration
    /// Requests that may be admitted at once from a full bucket, ≥ 1.
    public var burst: Int
    /// `enforce` (the default) or `shadow`: evaluated and recorded, never denying or delaying.
    public var mode: Mode = .enforce

    /// Whom the policy limits when its key belongs to a tenant (set when the request is decided,
    /// never stored): the key alone, or every key of the tenant together. `nil` for a key without
    /// a tenant, whose names and state are as they always were.
    public var owner: Owner? = nil

    /// Whom a policy of a tenant's key limits.
    public enum Owner: Sendable, Hashable {
        /// This key alone (its id).
        case key(String)
        /// Every key of the tenant together.
        case tenant
    }

    /// The name of the policy's state under its limiter key, unique within it: the bare name, or
    /// `k:<key id>:<name>` and `t:<name>` under a tenant's limiter key (whose keys share it).
    public var stateName: String {
        switch owner {
        case nil: name
        case .key(let id): "k:\(id):\(name)"
        case .tenant: "t:\(name)"
        }
    }

    /// The name clients see (`RateLimit`, `RateLimit-Policy`, `violated-policies`): the bare name,
    /// or `key:<name>` / `tenant:<name>` for a tenant's key, so that a refusal says whose limit it is.
    public var displayName: String {
        switch owner {
        case nil: name
        case .key: "key:\(name)"
        case .tenant: "tenant:\(name)"
        }
    }

    /// The policy with `owner` set.
    public func owned(by owner: Owner) -> Policy {
        var policy = self
        policy.owner = owner
        return policy
    }

    /// Whether a policy decides (`enforce`) or is only tried on live traffic (`shadow`).
    public enum Mode: String, Sendable, Hashable, Codable {
        case enforce
        case shadow
    }

    public init(name: String = "default", rate: Int, period: Duration = .seconds(1), burst: Int? = nil) {
        self.name = name
        self.rate = rate
        self.period = period
        self.burst = burst ?? rate
    }

    /// The name of a key's (or tenant's) daily quota, `quota_per_day`.
    public static let dailyName = "daily"

    /// A rolling 24-hour quota of `limit` requests.
    public static func daily(_ limit: Int, name: String = dailyName) -> Policy {
        Policy(name: name, rate: limit, period: .seconds(86_400), burst: limit)
    }

    /// `nil` when valid, else what is wrong.
    public var validationError: String? {
        if !Self.isValidName(name) { return "policy name must be 1-32 characters of a-z, 0-9, '_' or '-'" }
        if rate < 1 { return "rate must be at least 1" }
        if burst < 1 { return "burst must be at least 1" }
        if period < .microseconds(1) || period > .seconds(1_000_000_000) { return "period must be between 1 µs and 10^9 s" }
        // gcra.lua keeps every offset below 2^51 µs, so that Redis' clock plus any of them stays
        // exact in a Lua double: a burst of bursts × the emission interval must fit.
        let interval = emissionIntervalMicroseconds
        let (offset, overflow) = interval.multipliedReportingOverflow(by: Int64(burst))
        if rate >= Self.maximumOffset || burst >= Self.maximumOffset || overflow || offset >= Self.maximumOffset {
            return "burst × period ÷ rate must stay below 2^51 µs (about 71 years), and rate and burst below 2^51"
        }
        return nil
    }

    /// The time one request costs, in whole µs, rounded *up*: a rounding error can only make the
    /// limit stricter, never admit more. `gcra.lua` is sent multiples of it (charge, allowance).
    public var emissionIntervalMicroseconds: Int64 {
        let periodMicroseconds = period.microseconds
        return (periodMicroseconds + Int64(rate) - 1) / Int64(rate)
    }

    /// The GCRA tolerance: `burst` requests' worth of emission intervals, in µs.
    public var toleranceMicroseconds: Int64 { emissionIntervalMicroseconds * Int64(burst) }

    /// The limiter's bound on any offset in µs (see `lua/gcra.lua`).
    static let maximumOffset: Int64 = 1 << 51

    static func isValidName(_ name: String) -> Bool {
        (1...32).contains(name.utf8.count)
            && name.utf8.allSatisfy { byte in
                (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
                    || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-")
            }
    }

    private enum CodingKeys: String, CodingKey { case name, rate, period, burst, mode }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let seconds = try container.decode(Double.self, forKey: .period)
        guard seconds.isFinite, seconds >= 0.000001, seconds <= 1e9 else {
            throw DecodingError.dataCorruptedError(forKey: .period, in: container, debugDescription: "period must be seconds from 0.000001 to 10^9")
        }
        let rate = try container.decode(Int.self, forKey: .rate)
        self.init(
            name: try container.decodeIfPresent(String.self, forKey: .name) ?? "default",
            rate: rate,
            period: .microseconds(Int64((seconds * 1_000_000).rounded())),
            burst: try container.decodeIfPresent(Int.self, forKey: .burst) ?? rate
        )
        mode = try container.decodeIfPresent(Mode.self, forKey: .mode) ?? .enforce
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(name, forKey: .name)
        try container.encode(rate, forKey: .rate)
        try container.encode(period.seconds, forKey: .period)
        try container.encode(burst, forKey: .burst)
        if mode == .shadow { try container.encode(mode, forKey: .mode) }
    }
}

