import Foundation
import SluiceAuth

/// A private Redis and `sluice serve` replicas sharing it, with fresh secrets; optionally
/// `sluice worker`s for queued jobs.
public final class Cluster: Sendable {
    public let redis: RedisServer
    public let replicas: [ServiceProcess]
    public let workers: [ServiceProcess]
    public let adminKey = APIKey.generate().revealed
    public let signingKey = (0..<4).map { _ in String(UInt64.random(in: .min ... .max), radix: 16) }.joined() + "-test-signing-key"
    /// How replicas and workers get their signing keys: `SLUICE_MODEL_SIGNING_KEY` = ``signingKey``
    /// unless the test gives another way.
    public let signing: [String: String]

    public init(replicas count: Int = 1, workers workerCount: Int = 0, workerArguments: [String] = ["--visibility-timeout", "2"],
         redisArguments: [String] = [], environment extra: [String: String] = [:], replicaArguments: [String] = [],
         readyOverTLS caFile: String? = nil, signing: [String: String]? = nil) async throws {
        redis = try RedisServer(arguments: redisArguments)
        let signing = signing ?? ["SLUICE_MODEL_SIGNING_KEY": signingKey]
        self.signing = signing
        let environment = ["SLUICE_ADMIN_KEY": adminKey].merging(signing) { $1 }.merging(extra) { $1 }
        let url = redis.url
        replicas = try (0..<count).map { _ in try ServiceProcess(redisURL: url, environment: environment, arguments: replicaArguments) }
        for replica in replicas {
            if let caFile { try await replica.waitUntilReady(caFile: caFile) } else { try await replica.waitUntilReady() }
        }
        let workerEnvironment = signing.merging(extra.filter { $0.key == "SLUICE_SECRETS_POLL_INTERVAL" || $0.key.hasPrefix("OTEL_") }) { $1 }
        workers = try (0..<workerCount).map { _ in try ServiceProcess("worker", redisURL: url, environment: workerEnvironment, arguments: workerArguments) }
        for worker in workers { try await worker.waitUntilHealthy() }
    }

    /// Starts one more worker (the signing key travels, the admin key does not: workers never need it).
    public func startWorker(arguments: [String] = ["--visibility-timeout", "2"]) async throws -> ServiceProcess {
        let worker = try ServiceProcess("worker", redisURL: redis.url, environment: signing, arguments: arguments)
        try await worker.waitUntilHealthy()
        return worker
    }

    public var url: String { replicas[0].baseURL }

    /// Creates a key through the API and returns the full key and its id.
    public func createKey(scopes: [String], policies: String = #"[{"name":"default","rate":1000,"period":1,"burst":1000}]"#,
                   extra: String = "", on replica: Int = 0) async throws -> (key: String, id: String) {
        let body = Self.keyBody(scopes: scopes, policies: policies, extra: extra)
        return try Self.createdKey(try await HTTP.json("POST", "\(replicas[replica].baseURL)/v1/keys", key: adminKey, body))
    }

    /// The body of `POST /v1/keys` for a test key.
    public static func keyBody(scopes: [String], policies: String, extra: String) -> String {
        #"{"name":"test","scopes":[\#(scopes.map { "\"\($0)\"" }.joined(separator: ","))],"policies":\#(policies)\#(extra)}"#
    }

    /// The full key and its id from the answer to `POST /v1/keys`.
    public static func createdKey(_ response: HTTP.Response) throws -> (key: String, id: String) {
        guard response.status == 201, let json = response.json, let key = json["key"] as? String, let id = json["id"] as? String else {
            throw TestSupportError("key creation failed: \(response.status) \(response.text)")
        }
        return (key, id)
    }

    /// Polls a queued job at `location` as a polite client (honouring `Retry-After` of 202 and
    /// 429) until it has run; its JSON.
    public func jobResult(_ location: String, key: String, timeout: Duration = .seconds(60)) async throws -> [String: Any] {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let response = try await HTTP.send("GET", "\(url)\(location)", headers: ["Authorization": "Bearer \(key)"])
            if response.status == 200 {
                guard let json = response.json else { throw TestSupportError("job \(location): 200 without JSON: \(response.text)") }
                return json
            }
            guard response.status == 202 || response.status == 429 || response.status == 503 else {
                throw TestSupportError("job \(location): \(response.status) \(response.text)")
            }
            let wait = Double(response.header("Retry-After") ?? "1") ?? 1
            try await Task.sleep(for: .milliseconds(Int(min(wait, 1) * 1000)))
        }
        throw TestSupportError("job \(location) not done in time")
    }

    /// 64 random hex characters (a strong secret: an API key's, a password, a signing key).
    public static func randomHex() -> String {
        (0..<4).map { _ in
            let word = String(UInt64.random(in: .min ... .max), radix: 16)
            return String(repeating: "0", count: 16 - word.count) + word
        }.joined()
    }

    public static let setosa = #"{"features":{"sepal_length":5.1,"sepal_width":3.5,"petal_length":1.4,"petal_width":0.2}}"#

    public static func irisCSV(shuffledLabels: Bool = false) throws -> String {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../data/iris.csv").path
        var lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map(String.init)
        guard shuffledLabels else { return lines.joined(separator: "\n") }
        let header = lines.removeFirst()
        var labels = lines.map { String($0.split(separator: ",").last!) }
        var generator = SystemRandomNumberGenerator()
        labels.shuffle(using: &generator)
        let rows = zip(lines, labels).map { line, label in line.split(separator: ",").dropLast().joined(separator: ",") + "," + label }
        return ([header] + rows).joined(separator: "\n")
    }
}
