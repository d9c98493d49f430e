// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "sluice",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "sluice", targets: ["sluice"]),
        .library(name: "SluiceRedis", targets: ["SluiceRedis"]),
        .library(name: "SluiceLimiter", targets: ["SluiceLimiter"]),
        // For the fuzzing package in Fuzz/ (built apart, with libFuzzer and AddressSanitizer).
        .library(name: "SluiceService", targets: ["SluiceService"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.4.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.3"),
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
        // Spans (the API, a no-op until a tracer is bootstrapped) and their OTLP/HTTP export (the
        // binary only, and only OTLP/HTTP: the gRPC exporter would add grpc-swift to every build).
        .package(url: "https://github.com/apple/swift-distributed-tracing", from: "1.7.3"),
        .package(url: "https://github.com/swift-otel/swift-otel", from: "1.6.0", traits: ["OTLPHTTP"]),
        // Tests only: reads openapi.yaml to check live responses against it.
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.1"),
    ],
    targets: [
        // hiredis 0.14 from Debian's libhiredis-dev (RESP2): its reader parses every Redis reply.
        .systemLibrary(
            name: "CHiredis",
            pkgConfig: "hiredis",
            providers: [.apt(["libhiredis-dev"]), .brew(["hiredis"])]
        ),
        // Redis client: auto-pipelining connections on SwiftNIO's event loops, hiredis' reader as
        // the RESP parser, TLS through swift-nio-ssl; a small pool.
        .target(
            name: "SluiceRedis",
            dependencies: [
                "CHiredis", "SluiceSecrets",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
            ]
        ),
        // GCRA rate limiter over the scripts in lua/ (embedded at build time through the `lua` symlink).
        .target(
            name: "SluiceLimiter",
            dependencies: ["SluiceCore", "SluiceRedis", .product(name: "Logging", package: "swift-log")],
            exclude: ["lua/queue_enqueue.lua", "lua/queue_claim.lua", "lua/queue_complete.lua", "lua/lock_release.lua"],
            resources: [
                .embedInCode("lua/gcra.lua"), .embedInCode("lua/gcra_charge.lua"), .embedInCode("lua/heartbeat.lua"), .embedInCode("lua/lease_acquire.lua"),
            ]
        ),
        // The durable queue of deferred jobs over lua/queue_*.lua: enqueue, claim, complete.
        .target(
            name: "SluiceQueue",
            dependencies: ["SluiceCore", "SluiceRedis"],
            exclude: ["lua/gcra.lua", "lua/gcra_charge.lua", "lua/heartbeat.lua", "lua/lease_acquire.lua", "lua/lock_release.lua"],
            resources: [
                .embedInCode("lua/queue_enqueue.lua"), .embedInCode("lua/queue_claim.lua"), .embedInCode("lua/queue_complete.lua"),
            ]
        ),
        // Secrets from environment variables or `*_FILE` secret files, and their reload when a
        // secrets manager rewrites the files.
        .target(
            name: "SluiceSecrets",
            dependencies: [
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ]
        ),
        // What every higher module shares: JSON coding conventions, time units.
        .target(name: "SluiceCore"),
        // Training data validation, the trainer, signed artifacts and the model registry in Redis.
        .target(
            name: "SluiceModel",
            dependencies: [
                "SluiceCore", "SluiceRedis", "SluiceSecrets",
                .product(name: "Crypto", package: "swift-crypto"), .product(name: "Logging", package: "swift-log"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
            ],
            exclude: [
                "data/README.md", "lua/gcra.lua", "lua/gcra_charge.lua", "lua/heartbeat.lua", "lua/lease_acquire.lua", "lua/queue_enqueue.lua", "lua/queue_claim.lua", "lua/queue_complete.lua",
            ],
            resources: [.embedInCode("data/iris.csv"), .embedInCode("lua/lock_release.lua")]
        ),
        // API keys (format, hashing, scopes) and their records in Redis.
        .target(
            name: "SluiceAuth",
            dependencies: [
                "SluiceCore", "SluiceRedis", "SluiceLimiter", "SluiceSecrets",
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        // The Prometheus registry every process shares the naming and the model/Redis metrics of.
        .target(
            name: "SluiceMetrics",
            dependencies: ["SluiceModel", "SluiceRedis", .product(name: "Prometheus", package: "swift-prometheus")]
        ),
        // The HTTP API (Hummingbird): routes, auth and scopes, rate limiting, validation, metrics.
        .target(
            name: "SluiceService",
            dependencies: [
                "SluiceCore", "SluiceRedis", "SluiceLimiter", "SluiceSecrets", "SluiceAuth", "SluiceModel", "SluiceQueue", "SluiceMetrics",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                // The model, pub/sub and degraded mode run as services beside the HTTP server.
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                // The connection guard (read deadline, connection cap) and TLS sit in the NIO pipeline.
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "NIOHTTPTypesHTTP1", package: "swift-nio-extras"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                // Idempotency keys and request fingerprints are stored as SHA-256 digests.
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
            ]
        ),
        // `sluice worker`: runs queued jobs at their slot; /healthz and /metrics; graceful SIGTERM.
        .target(
            name: "SluiceWorker",
            dependencies: [
                "SluiceRedis", "SluiceModel", "SluiceQueue", "SluiceMetrics", "SluiceSecrets",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
            ]
        ),
        // `sluice loadtest`: open/closed-loop load over keep-alive HTTP/1.1 (SwiftNIO), HdrHistogram latencies.
        .target(
            name: "SluiceLoad",
            dependencies: [
                "SluiceCore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ]
        ),
        .executableTarget(
            name: "sluice",
            dependencies: [
                "SluiceCore", "SluiceRedis", "SluiceLimiter", "SluiceSecrets", "SluiceAuth", "SluiceService", "SluiceWorker", "SluiceModel",
                "SluiceLoad",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "OTel", package: "swift-otel"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // Starts real redis-server processes for the tests; never linked into the product.
        .target(name: "SluiceTestSupport", dependencies: ["SluiceAuth", "SluiceRedis"]),
        .testTarget(name: "SluiceRedisTests", dependencies: ["SluiceRedis", "SluiceTestSupport"]),
        .testTarget(name: "SluiceLimiterTests", dependencies: ["SluiceCore", "SluiceLimiter", "SluiceTestSupport"]),
        .testTarget(name: "SluiceSecretsTests", dependencies: ["SluiceSecrets"]),
        .testTarget(name: "SluiceModelTests", dependencies: ["SluiceModel", "SluiceTestSupport"]),
        .testTarget(
            name: "SluiceServiceTests",
            dependencies: [
                "SluiceAuth", "SluiceCore", "SluiceRedis", "SluiceLimiter", "SluiceModel", "SluiceQueue", "SluiceSecrets", "SluiceService",
                "SluiceTestSupport", .product(name: "Yams", package: "Yams"),
            ],
            // Python helpers: schemathesis' hooks (SchemathesisTests), the OTLP receiver (TracingTests).
            exclude: ["Schemathesis", "Tracing"]
        ),
        // The fast tier (scripts/test-fast): the replica's router in the test process, no socket.
        .testTarget(
            name: "SluiceServiceInProcessTests",
            dependencies: [
                "SluiceAuth", "SluiceCore", "SluiceLimiter", "SluiceModel", "SluiceSecrets", "SluiceService", "SluiceTestSupport",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
            ]
        ),
        .testTarget(name: "SluiceCoreTests", dependencies: ["SluiceCore", "SluiceModel", "SluiceTestSupport"]),
        .testTarget(name: "SluiceWorkerTests", dependencies: ["SluiceTestSupport"]),
        // `sluice keys|models|loadtest|healthcheck`, run as a user runs them.
        .testTarget(name: "CLITests", dependencies: ["SluiceAuth", "SluiceTestSupport"]),
        .testTarget(name: "SluiceAuthTests", dependencies: ["SluiceAuth", "SluiceLimiter", "SluiceTestSupport"]),
        .testTarget(name: "SluiceQueueTests", dependencies: ["SluiceQueue", "SluiceLimiter", "SluiceTestSupport"]),
        .testTarget(name: "SluiceLoadTests", dependencies: ["SluiceLoad"]),
        // The whole system: scripts/cluster, HAProxy, Redis ACLs, sluice loadtest, deployment files.
        .testTarget(
            name: "IntegrationTests",
            dependencies: [
                "SluiceAuth", "SluiceLimiter", "SluiceQueue", "SluiceRedis", "SluiceTestSupport", .product(name: "Yams", package: "Yams"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
