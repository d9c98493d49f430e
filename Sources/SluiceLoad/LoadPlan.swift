import NIOSSL
/// What a load test does: which keys it creates, how hard it drives each, for how long.
public struct LoadPlan: Sendable {
    public enum Mode: String, Sendable {
        /// A fixed arrival rate per key: a slow server cannot slow the test down.
        case open
        /// A fixed number of connections per key, each sending as soon as it has its answer.
        case closed
    }

    /// One API key of the test, created through the admin API and deleted afterwards.
    public struct Key: Sendable, Equatable {
        public var name: String
        public var overflow = "reject"
        public var rate = 20
        /// Seconds.
        public var period = 1.0
        public var burst = 10
        public var maxDelay: Double?
        public var maxQueueDelay: Double?
        public var maxDepth: Int?
        /// Requests per second offered (open loop); default: `multiple` × the policy's rate.
        public var offered: Double?

        public init(name: String) { self.name = name }

        /// `name[:field=value,...]` with fields rate, period, burst, overflow, max_delay,
        /// max_queue_delay, max_depth and offered, e.g. `q:rate=20,burst=10,overflow=queue,max_queue_delay=5`.
        public init(parsing spec: String) throws(LoadError) {
            let parts = spec.split(separator: ":", maxSplits: 1)
            guard let name = parts.first, !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }) else {
                throw .invalidPlan("key spec '\(spec)': expected name[:field=value,...]")
            }
            self.init(name: String(name))
            for field in parts.count > 1 ? parts[1].split(separator: ",") : [] {
                let pair = field.split(separator: "=", maxSplits: 1).map(String.init)
                guard pair.count == 2 else { throw .invalidPlan("key spec '\(spec)': '\(field)' is not field=value") }
                let (fieldName, value) = (pair[0], pair[1])
                func number() throws(LoadError) -> Double {
                    guard let number = Double(value), number.isFinite, number > 0 else {
                        throw .invalidPlan("key spec '\(spec)': \(fieldName) must be a positive number")
                    }
                    return number
                }
                switch fieldName {
                case "rate": rate = Int(try number())
                case "period": period = try number()
                case "burst": burst = Int(try number())
                case "overflow":
                    guard ["reject", "delay", "queue"].contains(value) else { throw .invalidPlan("key spec '\(spec)': overflow is reject, delay or queue") }
                    overflow = value
                case "max_delay": maxDelay = try number()
                case "max_queue_delay": maxQueueDelay = try number()
                case "max_depth": maxDepth = Int(try number())
                case "offered": offered = try number()
                default: throw .invalidPlan("key spec '\(spec)': unknown field '\(fieldName)'")
                }
            }
            guard rate >= 1, burst >= 1 else { throw .invalidPlan("key spec '\(spec)': rate and burst must be at least 1") }
        }

        /// The `POST /v1/keys` body that creates it.
        var creationBody: String {
            var fields = [
                #""name":"loadtest-\#(name)""#, #""scopes":["predict"]"#,
                #""policies":[{"name":"default","rate":\#(rate),"period":\#(period),"burst":\#(burst)}]"#, #""overflow":"\#(overflow)""#,
            ]
            if let maxDelay { fields.append(#""max_delay":\#(maxDelay)"#) }
            if let maxQueueDelay { fields.append(#""max_queue_delay":\#(maxQueueDelay)"#) }
            if let maxDepth { fields.append(#""max_depth":\#(maxDepth)"#) }
            return "{" + fields.joined(separator: ",") + "}"
        }

        /// How far beyond the end of sending this key's admitted work may still be running.
        var horizon: Double {
            switch overflow {
            case "delay": maxDelay ?? 1
            case "queue": maxQueueDelay ?? 60
            default: 0
            }
        }
    }

    public var host: String
    public var port: Int
    /// TLS to the target (`https://`), verified against the context's trust roots.
    public var tls: NIOSSLContext?
    public var adminKey: String
    public var keys: [Key]
    public var mode: Mode = .open
    /// Open loop: offered rate = multiple × policy rate, unless a key says `offered`.
    public var multiple = 5.0
    /// Closed loop: connections per key.
    public var connections = 8
    public var duration: Duration = .seconds(15)
    /// Stops sending after this many requests in all, if it comes first.
    public var maximumRequests: Int?
    /// Honour `Retry-After`: retry a 429 once its time has come (at most twice, within the run)
    /// and poll every 202 job until it is done.
    public var polite = false

    public init(host: String, port: Int, adminKey: String, keys: [Key]) {
        self.host = host
        self.port = port
        self.adminKey = adminKey
        self.keys = keys
    }

    /// Three keys, one per overflow mode, 20/s with bursts of 10; deferral horizons of 2 s (delay)
    /// and 5 s (queue) keep a 15 s run short.
    public static let defaultKeys: [Key] = {
        var reject = Key(name: "reject")
        reject.overflow = "reject"
        var delay = Key(name: "delay")
        delay.overflow = "delay"
        delay.maxDelay = 2
        var queue = Key(name: "queue")
        queue.overflow = "queue"
        queue.maxQueueDelay = 5
        queue.maxDepth = 10_000
        return [reject, delay, queue]
    }()

    func offeredRate(of key: Key) -> Double {
        key.offered ?? multiple * Double(key.rate) / key.period
    }
}

public enum LoadError: Error, CustomStringConvertible {
    case invalidPlan(String)
    case setup(String)

    public var description: String {
        switch self {
        case .invalidPlan(let message): message
        case .setup(let message): "load test setup failed: \(message)"
        }
    }
}
