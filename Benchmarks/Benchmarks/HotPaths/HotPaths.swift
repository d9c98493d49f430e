import Benchmark
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import NIOEmbedded
import ServiceLifecycle
@_spi(Benchmarks) import SluiceLimiter
@_spi(Benchmarks) import SluiceRedis
@_spi(Benchmarks) import SluiceService

/// Sluice's hot paths, counted: mallocs per operation are deterministic, so they are what
/// `Thresholds/` holds and CI checks (wall time is printed for information only). The request
/// benchmarks drive the replica's own router in process (`SluiceServer.responder()`), from the
/// parsed request to the written response body, against a **real Redis** named by
/// `SLUICE_BENCH_REDIS_URL` (scripts/bench-counts starts one): the limiter's reply is a real one,
/// its allocations on the event loop counted with the rest.
let benchmarks: @Sendable () -> Void = {
    // Mallocs are counted exactly; a regression is more than 5 % above the committed p90.
    let counted = BenchmarkThresholds(relative: [.p90: 5.0])
    Benchmark.defaultConfiguration = .init(
        metrics: [.mallocCountTotal, .wallClock],
        timeUnits: .microseconds,
        warmupIterations: 50,
        maxDuration: .seconds(3),
        maxIterations: 2_000,
        thresholds: [.mallocCountTotal: counted]
    )
    Benchmark.setup = { try await Replica.start() }

    // MARK: Whole requests through the router

    Benchmark("healthz") { benchmark in
        for _ in benchmark.scaledIterations { blackHole(try await Replica.shared.send(.get, "/healthz")) }
    }
    Benchmark("predict admitted") { benchmark in
        let replica = Replica.shared
        for _ in benchmark.scaledIterations {
            try await replica.expect(.ok, .post, "/v1/predict", key: replica.admittedKey, body: Replica.singleInstance)
        }
    }
    Benchmark("predict locally denied") { benchmark in
        let replica = Replica.shared
        for _ in benchmark.scaledIterations {
            try await replica.expect(.tooManyRequests, .post, "/v1/predict", key: replica.deniedKey, body: Replica.singleInstance)
        }
    }
    Benchmark("made-up key, throttled address") { benchmark in
        let replica = Replica.shared
        for _ in benchmark.scaledIterations {
            try await replica.expect(.tooManyRequests, .post, "/v1/predict", key: Replica.madeUpKey, body: Replica.singleInstance)
        }
    }

    // MARK: Steps

    Benchmark("gcra reply decoded, RateLimit fields written") { benchmark in
        let policies = [Policy(name: "default", rate: 100, period: .seconds(1), burst: 50), Policy(name: "daily", rate: 100_000, period: .seconds(86_400), burst: 100_000)]
        let reply = RedisReply.bulkString(Array("1 1764777600 123456 1764777600133456 1764777600987456".utf8))
        for _ in benchmark.scaledIterations {
            let decision = try RateLimiter.decode(reply, policies: policies, cost: 1)
            blackHole(HotPathSteps.rateLimitFields(for: decision))
        }
    }
    Benchmark("predict body parsed and answered (1 instance)") { benchmark in
        let model = Replica.shared.model
        let body = Array(Replica.singleInstance.utf8)
        for _ in benchmark.scaledIterations {
            guard let instances = HotPathSteps.parsePrediction(body, model: model) else { throw BenchmarkFailure("refused") }
            blackHole(model.predictionJSON(for: instances))
        }
    }
    Benchmark("predict body parsed and answered (64 instances)") { benchmark in
        let model = Replica.shared.model
        let body = Array(Replica.batch(64).utf8)
        for _ in benchmark.scaledIterations {
            guard let instances = HotPathSteps.parsePrediction(body, model: model) else { throw BenchmarkFailure("refused") }
            blackHole(model.predictionJSON(for: instances))
        }
    }
    Benchmark("RESP: gcra EVALSHA encoded") { benchmark in
        let sha = String(repeating: "a", count: 40)
        for _ in benchmark.scaledIterations {
            blackHole(RedisCommand("EVALSHA", [sha, "2", "rl:{abc}:default", "rl:{abc}:daily", "2710", "c350", "d6d8", "3b9aca00"]))
        }
    }
    Benchmark("RESP: 64 pipelined replies read") { benchmark in
        let replies = Array(String(repeating: "$53\r\n1 1764777600 123456 1764777600133456 1764777600987456\r\n", count: 64).utf8)
        for _ in benchmark.scaledIterations {
            let reader = HiredisReader()
            try replies.withUnsafeBytes { try reader.feed($0) }
            var count = 0
            while let reply = try reader.next() {
                blackHole(reply)
                count += 1
            }
            guard count == 64 else { throw BenchmarkFailure("read \(count) replies") }
        }
    }
}

struct BenchmarkFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
