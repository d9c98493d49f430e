import ArgumentParser
import Logging
import SluiceRedis
import SluiceSecrets

/// `--redis` and the Redis password, shared by every subcommand that talks to Redis.
struct RedisOptions: ParsableArguments {
    @Option(
        name: .customLong("redis"),
        help: ArgumentHelp(
            "Redis URL: redis://[user:password@]host:port[/db] or unix:///path. Env: SLUICE_REDIS_URL.",
            valueName: "url"
        )
    )
    var url: String?

    @Option(help: "Connections to Redis, each pipelining all concurrent commands (default: 1 for serve, 2 for bench-limiter).")
    var redisConnections: Int?

    @Option(help: "Redis command timeout in milliseconds.")
    var redisTimeoutMs: Int = 1000

    /// The configuration from the flag, `SLUICE_REDIS_URL`, `REDIS_USERNAME` and `REDIS_PASSWORD` /
    /// `REDIS_PASSWORD_FILE` (used when the URL carries no user or password, so that neither need
    /// appear in a URL at all: the ACL user of each role comes from its deployment).
    /// - Parameter connections: the command's default pool size. Measured on 2 cores: `serve`
    ///   (sharing the cores with NIO's event loops) does best with 1 (19.0k vs 15.5k predictions/s),
    ///   the bare limiter benchmark with 2 (98k vs 76k decisions/s).
    func configuration(secrets: SecretSource = SecretSource(), connections: Int) throws -> RedisConfiguration {
        let url = url ?? secrets.environment["SLUICE_REDIS_URL"] ?? "redis://127.0.0.1:6379"
        let password = try secrets.optional("REDIS_PASSWORD")
        var configuration = try RedisConfiguration(url: url, password: password?.revealed)
        if configuration.username == nil, let user = secrets.environment["REDIS_USERNAME"], !user.isEmpty {
            configuration.username = user
        }
        configuration.connections = redisConnections ?? connections
        configuration.commandTimeout = .milliseconds(redisTimeoutMs)
        return configuration
    }
}
