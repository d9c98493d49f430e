import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import NIOEmbedded
import ServiceLifecycle
import SluiceModel
@_spi(Benchmarks) import SluiceRedis
@_spi(Benchmarks) import SluiceService

/// One replica in this process on the Redis of `SLUICE_BENCH_REDIS_URL`, with the keys the request
/// benchmarks use: one admitted (limits far above what a run sends), one over its limit (so
/// that local denial proves its refusal), and an address that failed authentication until it was
/// throttled. Records are cached for the run (`keyCacheLifetime`), as on a busy replica.
final class Replica: Sendable {
    /// Set by `Benchmark.setup` (``start()``) before any benchmark runs.
    nonisolated(unsafe) private static var started: Replica?
    static var shared: Replica { started! }

    let responder: any HTTPResponder<SluiceRequestContext>
    let channel: NIOAsyncTestingChannel
    let logger: Logger
    let model: ModelArtifact
    let admittedKey: String
    let deniedKey: String

    static let singleInstance = #"{"features":{"sepal_length":5.1,"sepal_width":3.5,"petal_length":1.4,"petal_width":0.2}}"#
    /// A key of the right format whose id exists nowhere.
    static let madeUpKey = "sk_nosuchkey0_" + String(repeating: "0123456789abcdef", count: 4)

    static func batch(_ count: Int) -> String {
        let instance = #"{"sepal_length":6.3,"sepal_width":2.9,"petal_length":5.6,"petal_width":1.8}"#
        return #"{"instances":["# + Array(repeating: instance, count: count).joined(separator: ",") + "]}"
    }

    private init(responder: any HTTPResponder<SluiceRequestContext>, channel: NIOAsyncTestingChannel, logger: Logger, model: ModelArtifact, admittedKey: String, deniedKey: String) {
        self.responder = responder
        self.channel = channel
        self.logger = logger
        self.model = model
        self.admittedKey = admittedKey
        self.deniedKey = deniedKey
    }

    /// Starts the replica once: the plugin calls `Benchmark.setup` before every benchmark.
    static func start() async throws {
        if started != nil { return }
        guard let url = ProcessInfo.processInfo.environment["SLUICE_BENCH_REDIS_URL"] else {
            throw BenchmarkFailure("SLUICE_BENCH_REDIS_URL is not set: run scripts/bench-counts, which starts a Redis for the run")
        }
        let adminKey = "sk_benchadmin_" + (0..<4).map { _ in String(UInt64.random(in: .min ... .max), radix: 16).leftPadded(16) }.joined()
        var logger = Logger(label: "sluice.bench")
        logger.logLevel = .warning
        let server = try SluiceServer.inProcess(
            redis: try RedisConfiguration(url: url),
            environment: ["SLUICE_ADMIN_KEY": adminKey, "SLUICE_MODEL_SIGNING_KEY": "sluice-bench-signing-key-0123456789abcdef0123456789abcdef"],
            logger: logger
        ) { $0.keyCacheLifetime = .seconds(3600) }
        let services = ServiceGroup(configuration: .init(services: server.backgroundServices, logger: logger))
        Task { try await services.run() }

        progress("services started")
        let channel = NIOAsyncTestingChannel()
        channel.remoteAddress = try SocketAddress(ipAddress: "192.0.2.10", port: 40_000)
        let responder = server.responder()
        let deadline = ContinuousClock.now + .seconds(60)
        while server.model == nil {
            guard ContinuousClock.now < deadline else { throw BenchmarkFailure("the replica never loaded a model") }
            try await Task.sleep(for: .milliseconds(50))
        }
        progress("model loaded")
        var replica = Replica(responder: responder, channel: channel, logger: logger, model: server.model!, admittedKey: "", deniedKey: "")
        let admitted = try await replica.createKey(adminKey: adminKey, policies: #"[{"name":"default","rate":1000000,"period":1,"burst":1000000}]"#)
        let denied = try await replica.createKey(adminKey: adminKey, policies: #"[{"name":"default","rate":1,"period":3600,"burst":1}]"#)
        replica = Replica(responder: responder, channel: channel, logger: logger, model: server.model!, admittedKey: admitted, deniedKey: denied)
        progress("keys created")
        // The denied key spends its burst; the address fails until it is throttled.
        try await replica.expect(.ok, .post, "/v1/predict", key: denied, body: singleInstance)
        for _ in 0..<100 where try await replica.send(.post, "/v1/predict", key: madeUpKey, body: singleInstance).status != .tooManyRequests {}
        progress("ready")
        started = replica
    }

    private func createKey(adminKey: String, policies: String) async throws -> String {
        let body = #"{"name":"bench","scopes":["predict"],"policies":\#(policies)}"#
        let (response, written) = try await exchange(.post, "/v1/keys", key: adminKey, body: body)
        let text = String(buffer: written)
        guard response.status == .created, let object = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any],
            let key = object["key"] as? String
        else { throw BenchmarkFailure("key creation: \(response.status) \(text)") }
        return key
    }

    /// One request through the router, its body written out, as the server would.
    func send(_ method: HTTPRequest.Method, _ path: String, key: String? = nil, body: String? = nil) async throws -> Response {
        try await exchange(method, path, key: key, body: body).response
    }

    func expect(_ status: HTTPResponse.Status, _ method: HTTPRequest.Method, _ path: String, key: String? = nil, body: String? = nil) async throws {
        let (response, written) = try await exchange(method, path, key: key, body: body)
        guard response.status == status else {
            throw BenchmarkFailure("\(method) \(path): \(response.status), not \(status): \(String(buffer: written))")
        }
    }

    private func exchange(_ method: HTTPRequest.Method, _ path: String, key: String?, body: String?) async throws -> (response: Response, body: ByteBuffer) {
        var fields = HTTPFields()
        if let key { fields[.authorization] = "Bearer " + key }
        if body != nil { fields[.contentType] = "application/json" }
        let request = Request(
            head: HTTPRequest(method: method, scheme: "http", authority: "127.0.0.1", path: path, headerFields: fields),
            body: RequestBody(buffer: body.map { ByteBuffer(string: $0) } ?? ByteBuffer())
        )
        let context = SluiceRequestContext(source: ApplicationRequestContextSource(channel: channel, logger: logger))
        var response: Response
        do {
            response = try await responder.respond(to: request, context: context)
        } catch let error as any HTTPResponseError {
            response = try error.response(from: request, context: context)
        }
        let writer = BodyCollector()
        try await response.body.write(writer)
        return (response, writer.bytes)
    }
}

/// Receives a response body as the HTTP server's writer would.
final class BodyCollector: ResponseBodyWriter, @unchecked Sendable {
    var bytes = ByteBuffer()
    func write(_ buffer: ByteBuffer) async throws { bytes.writeImmutableBuffer(buffer) }
    func finish(_ trailingHeaders: HTTPFields?) async throws {}
}

extension String {
    fileprivate func leftPadded(_ width: Int) -> String { String(repeating: "0", count: max(0, width - count)) + self }
}

func progress(_ text: String) { FileHandle.standardError.write(Data("bench: \(text)\n".utf8)) }
