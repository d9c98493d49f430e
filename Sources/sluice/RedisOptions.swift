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

    @Option(help: "Connections to Redis (each pipelines all concurrent commands).")
    var redisConnections: Int = 2

    @Option(help: "Redis command timeout in milliseconds.")
    var redisTimeoutMs: Int = 1000

    /// The configuration from the flag, `SLUICE_REDIS_URL`, and `REDIS_PASSWORD` / `REDIS_PASSWORD_FILE`
    /// (used when the URL carries no password, so the password need not appear in a URL at all).
    func configuration(secrets: SecretSource = SecretSource()) throws -> RedisConfiguration {
        let url = url ?? secrets.environment["SLUICE_REDIS_URL"] ?? "redis://127.0.0.1:6379"
        let password = try secrets.optional("REDIS_PASSWORD")
        var configuration = try RedisConfiguration(url: url, password: password?.revealed)
        configuration.connections = redisConnections
        configuration.commandTimeout = .milliseconds(redisTimeoutMs)
        return configuration
    }
}
