import Foundation
import SluiceTestSupport
import Synchronization
import Testing

/// Usage metering over HTTP against two replicas: after a mixed load, `GET /v1/usage` per key and
/// per tenant equals what the clients were answered, to the request.
@Suite("Usage metering per key and tenant", .serialized)
struct UsageTests {
    /// What one key's clients saw.
    struct Tally: Equatable, CustomStringConvertible {
        var admitted = 0, rate = 0, quota = 0, auth = 0
        var description: String { "admitted \(admitted), rate \(rate), quota \(quota), auth \(auth)" }

        static func + (a: Tally, b: Tally) -> Tally {
            Tally(admitted: a.admitted + b.admitted, rate: a.rate + b.rate, quota: a.quota + b.quota, auth: a.auth + b.auth)
        }
    }

    static func usage(_ cluster: Cluster, _ query: String, replica: Int = 0) async throws -> Tally {
        let response = try await HTTP.send(
            "GET", cluster.replicas[replica].baseURL + "/v1/usage?\(query)", headers: ["Authorization": "Bearer \(cluster.adminKey)"])
        let total = try #require(response.json?["total"] as? [String: Any], "\(response.status) \(response.text)")
        let denied = total["denied"] as? [String: Int] ?? [:]
        #expect(total["admitted_cost"] as? Int == total["admitted"] as? Int, "one instance per request: cost = requests")
        return Tally(admitted: total["admitted"] as? Int ?? -1, rate: denied["rate"] ?? -1, quota: denied["quota"] ?? -1, auth: denied["auth"] ?? -1)
    }

    @Test func usageEqualsWhatClientsWereAnsweredPerKeyAndTenant() async throws {
        let cluster = try await Cluster(replicas: 2)
        let tenant = try await TenantTests.createTenant(cluster, #"{"name":"acme","policies":[\#(TenantTests.policy("second", rate: 10, burst: 5))]}"#)
        let a = try await cluster.createKey(scopes: ["predict"], policies: "[\(TenantTests.policy("second", rate: 8, burst: 4))]", extra: #","tenant":"\#(tenant)""#)
        let b = try await cluster.createKey(
            scopes: ["predict"], policies: "[\(TenantTests.policy("second", rate: 100, burst: 100))]", extra: #","quota_per_day":6,"tenant":"\#(tenant)""#)
        let c = try await cluster.createKey(scopes: ["predict"], policies: "[\(TenantTests.policy("second", rate: 5, burst: 3))]")
        let keys = [a, b, c]
        let tallies = Tallies(count: keys.count)
        // About 3× each key's own rate for 2 s, over both replicas, local denials included.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (index, key) in keys.enumerated() {
                group.addTask {
                    for request in 0..<60 {
                        let response = try await HTTP.json(
                            "POST", cluster.replicas[request % 2].baseURL + "/v1/predict", key: key.key, Cluster.setosa)
                        tallies.count(index, response)
                        try await Task.sleep(for: .milliseconds(33))
                    }
                }
            }
            try await group.waitForAll()
        }
        // A real key presented with its rotated-out secret: refused, and counted as auth.
        let rotated = try await HTTP.json("POST", cluster.url + "/v1/keys/\(c.id)/rotate", key: cluster.adminKey, "{}")
        let fresh = try #require(rotated.json?["key"] as? String)
        try await Task.sleep(for: .milliseconds(1100))  // the refill of c's bucket, and the change everywhere
        for replica in 0..<2 {
            let response = try await HTTP.json("POST", cluster.replicas[replica].baseURL + "/v1/predict", key: fresh, Cluster.setosa)
            tallies.count(2, response)
            for _ in 0..<2 { tallies.count(2, try await HTTP.json("POST", cluster.replicas[replica].baseURL + "/v1/predict", key: c.key, Cluster.setosa)) }
        }
        try await Task.sleep(for: .seconds(2))  // the replicas' own counts are written every second

        let seen = tallies.all
        print("clients saw: \(seen)")
        #expect(seen[0].rate > 0 && seen[1].quota > 0 && seen[2].auth == 4, "the load covered every kind: \(seen)")
        for (index, key) in keys.enumerated() {
            let counted = try await Self.usage(cluster, "key=\(key.id)", replica: index % 2)
            #expect(counted == seen[index], "key \(index): counted \(counted), clients saw \(seen[index])")
        }
        let tenantCounted = try await Self.usage(cluster, "tenant=\(tenant)&granularity=day")
        #expect(tenantCounted == seen[0] + seen[1], "tenant: counted \(tenantCounted), its keys' clients saw \(seen[0] + seen[1])")

        // A bad query is a 400 problem; a key that does not exist a 404.
        for query in ["", "key=\(a.id)&tenant=\(tenant)", "key=\(a.id)&granularity=week", "key=\(a.id)&from=yesterday", "key=\(a.id)&debug=1"] {
            let response = try await HTTP.send("GET", cluster.url + "/v1/usage?\(query)", headers: ["Authorization": "Bearer \(cluster.adminKey)"])
            #expect(response.status == 400 && response.header("Content-Type") == "application/problem+json", "\(query): \(response.status)")
        }
        let missing = try await HTTP.send("GET", cluster.url + "/v1/usage?key=abcdefgh0000", headers: ["Authorization": "Bearer \(cluster.adminKey)"])
        #expect(missing.status == 404)
        #expect(try await HTTP.send("GET", cluster.url + "/v1/usage?key=\(a.id)", headers: ["Authorization": "Bearer \(a.key)"]).status == 403)
    }
}

/// Answers per key, from concurrent clients.
final class Tallies: Sendable {
    private let tallies: Mutex<[UsageTests.Tally]>

    init(count: Int) {
        tallies = Mutex(Array(repeating: UsageTests.Tally(), count: count))
    }

    func count(_ index: Int, _ response: HTTP.Response) {
        let violated = response.json?["violated-policies"] as? [String] ?? []
        tallies.withLock { tallies in
            switch response.status {
            case 200, 202: tallies[index].admitted += 1
            case 429 where violated.contains { $0.hasSuffix("daily") }: tallies[index].quota += 1
            case 429: tallies[index].rate += 1
            case 401: tallies[index].auth += 1
            default: tallies[index].admitted = -1_000_000  // never expected: fails the comparison
            }
        }
    }

    var all: [UsageTests.Tally] { tallies.withLock { $0 } }
}
