import ArgumentParser
import Logging
import SluiceRedis
import SluiceSecrets

/// `--redis` and the Redis password, shared by every subcommand that talks to Redis.
struct RedisOptions: ParsableArguments {
    @Option(name: .customLong("redis"), help: ArgumentHelp(RedisSettings.url.help.abstract, valueName: "url"))
    var url: String?
    @Option(help: RedisSettings.mode.help) var redisMode: String?
    @Option(help: RedisSettings.connections.help) var redisConnections: String?
    @Option(help: RedisSettings.timeout.help) var redisTimeoutMs: String?

    /// The configuration from the flag, `SLUICE_REDIS_URL`, `REDIS_USERNAME(_FILE)` and
    /// `REDIS_PASSWORD(_FILE)` (used when the URL carries no user or password, so that neither need
    /// appear in a URL at all: the ACL user of each role comes from its deployment).
    /// - Parameter connections: the command's default pool size. Measured on 2 cores: `serve`
    ///   (sharing the cores with NIO's event loops) does best with 1 (19.0k vs 15.5k predictions/s),
    ///   the bare limiter benchmark with 2 (98k vs 76k decisions/s).
    func configuration(secrets: SecretSource = SecretSource(), connections: Int) throws -> RedisConfiguration {
        let environment = secrets.environment
        let url: String = try RedisSettings.url.value(url, environment)
        let password = try secrets.optional("REDIS_PASSWORD")
        var configuration = try RedisConfiguration(url: url, password: password?.revealed)
        if configuration.username == nil, let user = try secrets.optional("REDIS_USERNAME") {
            configuration.username = user.revealed
        }
        configuration.mode = try RedisSettings.mode.value(redisMode, environment)
        configuration.connections = try RedisSettings.connections.value(redisConnections, environment) ?? connections
        configuration.commandTimeout = .milliseconds(try RedisSettings.timeout.value(redisTimeoutMs, environment) as Int)
        try applyTLS(to: &configuration, environment: environment)
        try configuration.validate()
        return configuration
    }

    /// In cluster mode, asks the seeds for the cluster's layout and its masters for `PING` before
    /// anything starts: no seed answering, a seed that is not a cluster node, refused credentials
    /// or no master answering stop the process with the nodes named, rather than a replica that
    /// answers 503 to everything. One master down is not a reason to stay down: the others' keys
    /// work (scripts/nemesis restarted a replica while a master was stopped). (One Redis may come
    /// up after its replicas; they answer 503 meanwhile, as they would if it went away.)
    static func checkCluster(_ configuration: RedisConfiguration) async throws {
        guard configuration.mode == .cluster else { return }
        let probe = RedisClient(configuration: configuration, logger: Logger(label: "sluice.redis"))
        defer { probe.shutdown() }
        do {
            try await probe.pingAny()
        } catch {
            throw ValidationError("the Redis Cluster at \(configuration.seeds.map(\.description).joined(separator: ",")) cannot be used: \(error)")
        }
    }

    /// `SLUICE_REDIS_TLS_*`: a CA to trust instead of the system's, a client certificate and key
    /// for mutual TLS, a name to verify instead of the URL's host. Refused with a `redis://` URL:
    /// a setting that would silently do nothing is a mistake to report, not to ignore.
    private func applyTLS(to configuration: inout RedisConfiguration, environment: [String: String]) throws {
        let names = ["SLUICE_REDIS_TLS_CA_FILE", "SLUICE_REDIS_TLS_CERT_FILE", "SLUICE_REDIS_TLS_KEY_FILE", "SLUICE_REDIS_TLS_SERVER_NAME"]
        if let unknown = environment.keys.sorted().first(where: { $0.hasPrefix("SLUICE_REDIS_TLS_") && !names.contains($0) }) {
            throw ValidationError("unknown setting \(unknown); the Redis TLS settings are \(names.joined(separator: ", "))")
        }
        let given = names.filter { !(environment[$0] ?? "").isEmpty }
        guard var tls = configuration.tls else {
            if !given.isEmpty {
                throw ValidationError("\(given.joined(separator: ", ")) set, but the Redis URL is not rediss://; use rediss:// for TLS")
            }
            return
        }
        tls.caFile = environment[names[0]].flatMap { $0.isEmpty ? nil : $0 }
        tls.certificateFile = environment[names[1]].flatMap { $0.isEmpty ? nil : $0 }
        tls.keyFile = environment[names[2]].flatMap { $0.isEmpty ? nil : $0 }
        tls.serverName = environment[names[3]].flatMap { $0.isEmpty ? nil : $0 }
        configuration.tls = tls
    }
}
