import Foundation
import SluiceTestSupport
import Testing

/// `max_in_flight`: requests of a key served at once across replicas, as leases in Redis.
@Suite("Concurrency limit: max_in_flight", .serialized)
struct ConcurrencyLimitTests {
    static let concurrency = "https://iana.org/assignments/http-problem-types#concurrency"

    @Test func slowRequestsAcrossTwoReplicasHoldAtMostTheLimitAndADeadReplicasLeasesExpire() async throws {
        let cluster = try await Cluster(replicas: 2, replicaArguments: ["--in-flight-lease", "2"])
        // Held requests are slow ones: at 1/s, each over the burst waits for its slot (max 3 s).
        let (key, id) = try await cluster.createKey(
            scopes: ["predict"], policies: #"[{"name":"default","rate":1,"period":1,"burst":1}]"#,
            extra: #", "overflow": "delay", "max_delay": 3, "max_in_flight": 2"#)
        let shown = try await HTTP.json("GET", cluster.url + "/v1/keys/\(id)", key: cluster.adminKey, "")
        #expect(shown.json?["max_in_flight"] as? Int == 2)
        #expect(try await HTTP.json("POST", cluster.url + "/v1/predict", key: key, Cluster.setosa).status == 200)

        // Four at once over two replicas: two are held (in flight for 1-2 s), two refused at once.
        let answers = try await withThrowingTaskGroup(of: HTTP.Response.self) { group in
            for index in 0..<4 {
                group.addTask {
                    try await HTTP.json("POST", cluster.replicas[index % 2].baseURL + "/v1/predict", key: key, Cluster.setosa)
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        let served = answers.filter { $0.status == 200 }
        let refused = answers.filter { $0.status == 429 }
        #expect(served.count == 2 && refused.count == 2, "\(answers.map(\.status))")
        #expect(served.allSatisfy { $0.header("Sluice-Delay") != nil }, "the two in flight were held")
        for answer in refused {
            #expect(answer.json?["type"] as? String == Self.concurrency && answer.json?["violated-policies"] as? [String] == ["concurrency"])
            #expect(answer.header("RateLimit-Policy")?.hasPrefix(#""concurrency";q=2;qu="concurrency";pk=:"#) == true, "\(answer.header("RateLimit-Policy") ?? "")")
            #expect(Int(answer.header("Retry-After") ?? "") ?? 0 >= 1)
        }
        // Refused for concurrency, they were not charged: the next slot is the third's.
        try await Task.sleep(for: .seconds(3))

        // A replica dies holding two leases: the other refuses until they expire (2 s + max_delay 3 s).
        let victim = cluster.replicas[1]
        #expect(try await HTTP.json("POST", cluster.replicas[0].baseURL + "/v1/predict", key: key, Cluster.setosa).status == 200, "takes the burst")
        let held = (0..<2).map { _ in
            Task { try? await HTTP.json("POST", victim.baseURL + "/v1/predict", key: key, Cluster.setosa) }
        }
        try await Task.sleep(for: .milliseconds(400))
        victim.kill()
        let killedAt = ContinuousClock.now
        for task in held { _ = await task.value }
        let right = try await HTTP.json("POST", cluster.replicas[0].baseURL + "/v1/predict", key: key, Cluster.setosa)
        #expect(right.status == 429 && right.json?["type"] as? String == Self.concurrency, "the dead replica's leases still count: \(right.status)")
        var freed: Duration?
        while ContinuousClock.now - killedAt < .seconds(9) {
            let response = try await HTTP.json("POST", cluster.replicas[0].baseURL + "/v1/predict", key: key, Cluster.setosa)
            if response.json?["type"] as? String != Self.concurrency {
                #expect(response.status == 200, "\(response.status) \(response.text)")
                freed = ContinuousClock.now - killedAt
                break
            }
            try await Task.sleep(for: .milliseconds(250))
        }
        let after = try #require(freed, "the leases never expired")
        #expect(after > .seconds(3) && after < .seconds(6), "freed \(after) after the kill (lease 2 s + max_delay 3 s)")
    }
}
