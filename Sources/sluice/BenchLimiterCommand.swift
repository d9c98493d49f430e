import ArgumentParser
import Foundation
import Logging
import SluiceCore
import SluiceLimiter
import SluiceRedis

/// `sluice bench-limiter`: decisions per second with many concurrent callers, and single-check
/// latency at low load. `scripts/bench-limiter` runs it next to `redis-benchmark` on the same script.
struct BenchLimiterCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-limiter",
        abstract: "Measure rate-limit decisions per second and single-check latency against a Redis."
    )

    @OptionGroup var redis: RedisOptions

    @Option(help: "Concurrent callers in the throughput phase.")
    var concurrency = 64

    @Option(help: "Seconds of the throughput phase (it always stops by itself).")
    var seconds = 5.0

    @Option(help: "Sequential checks in the latency phase.")
    var latencySamples = 2000

    @Option(help: "Rate-limit key (hash-tagged into sluice:rl:{key}:bench).")
    var key = "bench"

    func run() async throws {
        let client = RedisClient(configuration: try redis.configuration(connections: 2), logger: Logger(label: "sluice.bench"))
        defer { client.shutdown() }
        let limiter = RateLimiter(client: client)
        // Never denies, so every call takes the script's most expensive (writing) path.
        let policy = Policy(name: "bench", rate: 1_000_000_000, period: .seconds(1), burst: 1_000_000_000)
        try await limiter.reset(key: key, policies: [policy])
        let sha = try await client.load(RateLimiter.script)

        var samples: [Duration] = []
        samples.reserveCapacity(latencySamples)
        let clock = ContinuousClock()
        for _ in 0..<latencySamples {
            let started = clock.now
            _ = try await limiter.check(key: key, policies: [policy])
            samples.append(clock.now - started)
        }
        samples.sort()

        let deadline = clock.now + .milliseconds(Int(seconds * 1000))
        let started = clock.now
        let decisions = try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<concurrency {
                group.addTask {
                    var count = 0
                    while clock.now < deadline {
                        _ = try await limiter.check(key: key, policies: [policy])
                        count += 1
                    }
                    return count
                }
            }
            return try await group.reduce(0, +)
        }
        let elapsed = (clock.now - started).seconds

        func ms(_ quantile: Double) -> String {
            String(format: "%.3f", samples[min(samples.count - 1, Int(Double(samples.count) * quantile))].seconds * 1000)
        }
        print("script: gcra sha=\(sha)")
        print("redis-key: \(limiter.redisKey(for: key, policy: policy)) args: \(RateLimiter.arguments(policies: [policy], cost: 1).joined(separator: " "))")
        print("latency (1 caller, \(latencySamples) checks): p50 \(ms(0.50)) ms, p99 \(ms(0.99)) ms")
        print(String(format: "sluice limiter: %.0f decisions/s (%d callers, %d connections, %.1f s)",
                     Double(decisions) / elapsed, concurrency, client.configuration.connections, elapsed))
    }
}
