import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import SluiceAuth
import SluiceSecrets
@testable import SluiceService
import SluiceTestSupport

/// The fast tier: one replica's router, admission and services run in the test process against a
/// real Redis, with requests handed to the router directly (HummingbirdTesting's router test
/// framework: no socket, no `sluice` process). For what stays inside one replica — body parsing,
/// key specs, scopes, admission; what crosses processes is tested over HTTP.
struct InProcessReplica: Sendable {
    let redis: RedisServer
    let adminKey: String
    private let client: any TestClientProtocol

    /// Starts a Redis and runs `test` against a replica on it, once it has a model.
    static func run<Value: Sendable>(
        configure: @Sendable (inout ServiceConfiguration) -> Void = { _ in },
        _ test: @Sendable (InProcessReplica) async throws -> Value
    ) async throws -> Value {
        let redis = try RedisServer()
        defer { redis.stop() }
        let adminKey = APIKey.generate().revealed
        let signingKey = Cluster.randomHex() + "-test-signing-key"
        var configuration = try ServiceConfiguration(
            host: "127.0.0.1", port: 0, redis: redis.configuration(),
            secrets: SecretSource(environment: ["SLUICE_ADMIN_KEY": adminKey, "SLUICE_MODEL_SIGNING_KEY": signingKey]))
        configure(&configuration)
        var logger = Logger(label: "sluice.in-process")
        logger.logLevel = .warning
        let server = SluiceServer(configuration: configuration, logger: logger)
        defer { server.redis.shutdown() }
        return try await server.application().test(.router) { client in
            let replica = InProcessReplica(redis: redis, adminKey: adminKey, client: client)
            try await replica.waitUntilReady()
            return try await test(replica)
        }
    }

    /// Sends one request; the answer as the HTTP tests see one.
    func send(_ method: String, _ path: String, headers: [String: String] = [:], body: Data? = nil) async throws -> HTTP.Response {
        var fields = HTTPFields()
        for (name, value) in headers { fields[HTTPField.Name(name)!] = value }
        let response = try await client.execute(
            uri: path, method: HTTPRequest.Method(method)!, headers: fields, body: body.map { ByteBuffer(bytes: $0) })
        var headers: [String: String] = [:]
        for field in response.headers { headers[field.name.canonicalName] = headers[field.name.canonicalName].map { "\($0), \(field.value)" } ?? field.value }
        return HTTP.Response(status: Int(response.status.code), headers: headers, body: Data(response.body.readableBytesView))
    }

    /// JSON body with `Content-Type: application/json`.
    func json(_ method: String, _ path: String, key: String? = nil, headers extra: [String: String] = [:], _ body: String) async throws -> HTTP.Response {
        var headers = ["Content-Type": "application/json"].merging(extra) { $1 }
        if let key { headers["Authorization"] = "Bearer \(key)" }
        return try await send(method, path, headers: headers, body: Data(body.utf8))
    }

    /// Creates a key through the API and returns the full key and its id.
    func createKey(scopes: [String], policies: String = #"[{"name":"default","rate":1000,"period":1,"burst":1000}]"#, extra: String = "")
        async throws -> (key: String, id: String)
    {
        try Cluster.createdKey(try await json("POST", "/v1/keys", key: adminKey, Cluster.keyBody(scopes: scopes, policies: policies, extra: extra)))
    }

    private func waitUntilReady() async throws {
        let deadline = ContinuousClock.now + .seconds(20)
        while ContinuousClock.now < deadline {
            if try await send("GET", "/readyz").status == 200 { return }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw TestSupportError("the in-process replica never became ready")
    }
}
