import ServiceLifecycle
import SluiceAuth
import SluiceLimiter
import SluiceModel
import SluiceRedis
import SluiceSecrets

/// Everything `sluice serve` needs, validated before anything starts.
public struct ServiceConfiguration: Sendable {
    public var host: String
    public var port: Int
    public var redis: RedisConfiguration
    /// `SLUICE_ADMIN_KEY`: the bootstrap admin key (only its hash is kept).
    public var adminKey: APIKey
    /// `SLUICE_MODEL_SIGNING_KEY`: HMAC-SHA256 key for model artifacts.
    public var signer: ArtifactSigner
    /// Where the secrets came from: their `*_FILE`s are watched and taken again when rewritten.
    public var secrets: SecretSource
    /// `SLUICE_SECRETS_POLL_INTERVAL`: how often the secret files are read (default 5 s).
    public var secretsPollInterval: Duration
    /// `SLUICE_TRUSTED_PROXIES`: peers whose `X-Forwarded-For` is believed.
    public var trustedProxies: TrustedProxies
    public var keyCacheLifetime: Duration = .milliseconds(500)
    /// Read and idle timeouts and the connection cap for clients.
    public var connections = ConnectionLimits()
    /// TLS served by the replica itself (`--tls-cert`, `--tls-key`); nil for plain HTTP.
    public var tls: ServerTLS?
    /// When a trained model goes live by itself (`SLUICE_MODEL_MIN_ACCURACY`, or the bootstrap
    /// model's accuracy less a margin).
    public var activationGate: ActivationGate
    /// Stored model versions kept besides the active and the previous one (`--model-retention`).
    public var modelRetention = 20
    /// Uploads per key to `POST /v1/models`, on top of the key's own limits (`--training-rate`
    /// per hour, `--training-burst`); the name is reserved for it.
    public var trainingPolicy = Self.trainingPolicy(perHour: 12, burst: 3)
    /// Failed authentications per client address (`--auth-failure-rate` per minute,
    /// `--auth-failure-burst`), so that guessing keys is throttled; the name `auth` is reserved.
    public var failedAuthPolicy = Self.failedAuthPolicy(perMinute: 30, burst: 10)
    /// Limiter keys whose TAT bounds are kept for local denial (`--local-deny-entries`, LRU);
    /// 0 turns local denial off.
    public var localDenyEntries = 100_000
    /// How long a `max_in_flight` lease lasts if its replica dies holding it (`--in-flight-lease`),
    /// on top of a `delay` key's `max_delay`: it must exceed the longest request.
    public var inFlightLease: Duration = .seconds(60)
    /// The span exporter when tracing is on (the `OTEL_*` variables): run before every other
    /// service and stopped after them, so the last spans are sent. `nil`: no tracing middleware,
    /// and no span is started.
    public var tracing: (any Service)?

    public static func failedAuthPolicy(perMinute: Int, burst: Int) -> Policy {
        Policy(name: "auth", rate: perMinute, period: .seconds(60), burst: burst)
    }

    /// `perHour` uploads per key, `burst` of them at once; charged under the reserved name `training`.
    public static func trainingPolicy(perHour: Int, burst: Int) -> Policy {
        Policy(name: "training", rate: perHour, period: .seconds(3600), burst: burst)
    }

    /// `SLUICE_ADMIN_KEY`, checked: the key format, and a secret part that looks random.
    static func adminKey(_ secrets: SecretSource) throws(SecretError) -> APIKey {
        let admin = try secrets.required("SLUICE_ADMIN_KEY")
        guard let adminKey = APIKey(admin.revealed) else {
            throw .invalid(name: "SLUICE_ADMIN_KEY", reason: "must have the key format sk_<8-32 of a-z0-9>_<32+ of A-Za-z0-9>")
        }
        guard Secret(admin.revealed.split(separator: "_").last.map(String.init) ?? "").looksRandom else {
            throw .invalid(name: "SLUICE_ADMIN_KEY", reason: "its secret part looks weak (too few distinct characters); generate one with `sluice keygen`")
        }
        return adminKey
    }

    /// Reads and checks the required secrets; any problem is a refusal to start that names the
    /// variable, never its value.
    public init(host: String, port: Int, redis: RedisConfiguration, secrets: SecretSource) throws(SecretError) {
        self.host = host
        self.port = port
        self.redis = redis
        self.secrets = secrets
        self.secretsPollInterval = try secrets.pollInterval()
        self.adminKey = try Self.adminKey(secrets)
        self.signer = try ArtifactSigner(secrets: secrets)
        guard let proxies = TrustedProxies(secrets.environment["SLUICE_TRUSTED_PROXIES"] ?? "") else {
            throw .invalid(name: "SLUICE_TRUSTED_PROXIES", reason: "must be comma-separated addresses or IPv4 CIDR ranges")
        }
        self.trustedProxies = proxies
        if let text = secrets.environment["SLUICE_MODEL_MIN_ACCURACY"] {
            guard let floor = Double(text), floor > 0, floor <= 1 else {
                throw .invalid(name: "SLUICE_MODEL_MIN_ACCURACY", reason: "must be a fraction above 0 and at most 1, e.g. 0.9")
            }
            self.activationGate = ActivationGate(floor: floor)
        } else {
            do {
                self.activationGate = try ActivationGate.fromBootstrapModel()
            } catch {
                throw .invalid(name: "SLUICE_MODEL_MIN_ACCURACY", reason: "unset, and the bootstrap model's accuracy could not be computed: \(error)")
            }
        }
    }
}
