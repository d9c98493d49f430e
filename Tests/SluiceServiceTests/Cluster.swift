import Foundation
import SluiceAuth
import SluiceTestSupport

/// A private Redis and `sluice serve` replicas sharing it, with fresh secrets; optionally
/// `sluice worker`s for queued jobs.
final class Cluster: Sendable {
    let redis: RedisServer
    let replicas: [ServiceProcess]
    let workers: [ServiceProcess]
    let adminKey = APIKey.generate().revealed
    let signingKey = (0..<4).map { _ in String(UInt64.random(in: .min ... .max), radix: 16) }.joined() + "-test-signing-key"
    /// How replicas and workers get their signing keys: `SLUICE_MODEL_SIGNING_KEY` = ``signingKey``
    /// unless the test gives another way.
    let signing: [String: String]

    init(replicas count: Int = 1, workers workerCount: Int = 0, workerArguments: [String] = ["--visibility-timeout", "2"],
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
    func startWorker(arguments: [String] = ["--visibility-timeout", "2"]) async throws -> ServiceProcess {
        let worker = try ServiceProcess("worker", redisURL: redis.url, environment: signing, arguments: arguments)
        try await worker.waitUntilHealthy()
        return worker
    }

    var url: String { replicas[0].baseURL }

    /// Creates a key through the API and returns the full key and its id.
    func createKey(scopes: [String], policies: String = #"[{"name":"default","rate":1000,"period":1,"burst":1000}]"#,
                   extra: String = "", on replica: Int = 0) async throws -> (key: String, id: String) {
        let response = try await HTTP.json(
            "POST", "\(replicas[replica].baseURL)/v1/keys", key: adminKey,
            #"{"name":"test","scopes":[\#(scopes.map { "\"\($0)\"" }.joined(separator: ","))],"policies":\#(policies)\#(extra)}"#)
        guard response.status == 201, let json = response.json, let key = json["key"] as? String, let id = json["id"] as? String else {
            throw TestSupportError("key creation failed: \(response.status) \(response.text)")
        }
        return (key, id)
    }

    /// 64 random hex characters (a strong secret).
    static func randomHex() -> String {
        (0..<4).map { _ in
            let word = String(UInt64.random(in: .min ... .max), radix: 16)
            return String(repeating: "0", count: 16 - word.count) + word
        }.joined()
    }

    static let setosa = #"{"features":{"sepal_length":5.1,"sepal_width":3.5,"petal_length":1.4,"petal_width":0.2}}"#

    static func irisCSV(shuffledLabels: Bool = false) throws -> String {
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
