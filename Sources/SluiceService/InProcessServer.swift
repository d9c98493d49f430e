import HTTPTypes
import Hummingbird
import Logging
import ServiceLifecycle
import SluiceLimiter
import SluiceModel
import SluiceRedis
import SluiceSecrets

/// The replica without a socket, for the counted benchmarks (`Benchmarks/`): requests go to the
/// very router `sluice serve` runs, beside the same services (model, pub/sub, heartbeat). SPI, not
/// Sluice's API: `@_spi(Benchmarks) import SluiceService`.
@_spi(Benchmarks) extension SluiceServer {
    /// A replica on `redis`, configured from `environment` as `sluice serve` is (the admin key, the
    /// signing key, …), with no HTTP listener.
    public static func inProcess(
        redis: RedisConfiguration, environment: [String: String], logger: Logger, configure: (inout ServiceConfiguration) -> Void = { _ in }
    ) throws -> SluiceServer {
        var configuration = try ServiceConfiguration(host: "127.0.0.1", port: 0, redis: redis, secrets: SecretSource(environment: environment))
        configure(&configuration)
        return SluiceServer(configuration: configuration, logger: logger)
    }

    /// Every route and middleware of ``run()``, as one responder.
    public func responder() -> some HTTPResponder<SluiceRequestContext> { router().buildResponder() }

    /// What ``run()`` runs beside the HTTP server; run them in a `ServiceGroup`.
    public var backgroundServices: [any Service] { services }

    /// The model served now, once the services have loaded one.
    public var model: ModelArtifact? { models.current }
}

/// Single steps of the hot paths, on plain values, for the counted benchmarks.
@_spi(Benchmarks) public enum HotPathSteps {
    /// A prediction body parsed and validated as `POST /v1/predict` does it; `nil` when refused.
    public static func parsePrediction(_ body: [UInt8], model: ModelArtifact) -> [[Double]]? {
        try? PredictionInput.parse(body, model: model).instances
    }

    /// The `RateLimit-Policy`, `RateLimit` and `Sluice-Slot` fields every answer of `decision` carries.
    public static func rateLimitFields(for decision: Decision) -> HTTPFields { Admission.headers(for: decision) }
}
