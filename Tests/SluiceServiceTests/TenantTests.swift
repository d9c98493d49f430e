import Foundation
import SluiceRedis
import SluiceTestSupport
import Synchronization
import Testing

/// Tenants over HTTP against real replicas: budgets a customer's keys share, decided in the same
/// limiter call as each key's own limits, never charged for what the key refused.
@Suite("Tenants: budgets shared by a customer's keys", .serialized)
struct TenantTests {
    static func admin(_ cluster: Cluster, _ method: String, _ path: String, _ body: String? = nil, replica: Int = 0) async throws -> HTTP.Response {
        let url = cluster.replicas[replica].baseURL + path
        if let body { return try await HTTP.json(method, url, key: cluster.adminKey, body) }
        return try await HTTP.send(method, url, headers: ["Authorization": "Bearer \(cluster.adminKey)"])
    }

    static func createTenant(_ cluster: Cluster, _ body: String) async throws -> String {
        let created = try await admin(cluster, "POST", "/v1/tenants", "\(body)")
        guard created.status == 201, let id = created.json?["id"] as? String else {
            throw TestSupportError("tenant creation failed: \(created.status) \(created.text)")
        }
        return id
    }

    static func policy(_ name: String, rate: Int, period: Int = 1, burst: Int) -> String {
        #"{"name":"\#(name)","rate":\#(rate),"period":\#(period),"burst":\#(burst)}"#
    }

    @Test func aKeyRefusalChargesNothingToTheTenantAndTheAnswerNamesWhoseLimit() async throws {
        let cluster = try await Cluster()
        // The tenant's budget is large and slow (one unit per 86.4 s): its stored TAT says exactly
        // how many requests were charged to it.
        let tenant = try await Self.createTenant(cluster, #"{"name":"acme","policies":[\#(Self.policy("day", rate: 1000, period: 86_400, burst: 1000))]}"#)
        let (key, id) = try await cluster.createKey(
            scopes: ["predict"], policies: "[\(Self.policy("minute", rate: 2, period: 60, burst: 2))]", extra: #","tenant":"\#(tenant)""#)
        var statuses: [Int] = []
        var refused: HTTP.Response?
        for _ in 0..<10 {
            let response = try await HTTP.json("POST", cluster.url + "/v1/predict", key: key, Cluster.setosa)
            statuses.append(response.status)
            if response.status == 429 { refused = response }
        }
        #expect(statuses == [200, 200] + Array(repeating: 429, count: 8), "\(statuses)")
        let denial = try #require(refused)
        #expect(denial.json?["violated-policies"] as? [String] == ["key:minute"], "\(denial.text)")
        let policyField = try #require(denial.header("RateLimit-Policy"))
        #expect(policyField.contains(#""key:minute";q=2;w=60"#) && policyField.contains(#""tenant:day";q=1000;w=86400"#), "\(policyField)")
        let rateLimit = try #require(denial.header("RateLimit"))
        #expect(rateLimit.contains(#""tenant:day";r=998;"#), "two charged to the tenant: \(rateLimit)")
        // Neither the tenant's id nor another key's shows in a key's answers (pk is a hash).
        #expect(!denial.text.contains(tenant) && !policyField.contains(tenant) && !rateLimit.contains(tenant), "\(denial.text)")
        // The key's partition and the tenant's differ: a client sees which budget is shared.
        let partitions = Set(policyField.split(separator: ",").compactMap { $0.split(separator: ";").first { $0.hasPrefix("pk=") } })
        #expect(partitions.count == 2, "\(policyField)")

        let redis = cluster.redis.client()
        defer { redis.shutdown() }
        let time = try await redis.send(RedisCommand("TIME")).array?.compactMap { $0.string.flatMap(Int64.init) } ?? []
        let now = time[0] * 1_000_000 + time[1]
        let tat = try #require(try await redis.send(RedisCommand("GET", "sluice:rl:{t:\(tenant)}:t:day")).string.flatMap(Int64.init))
        let charged = Double(tat - now) / 86_400_000
        #expect(charged > 1.9 && charged <= 2.0, "the tenant was charged \(charged) requests' worth for 2 admitted, 8 refused by the key")
        #expect(try await redis.send(RedisCommand("EXISTS", "sluice:rl:{t:\(tenant)}:k:\(id):minute")).int == 1, "the key's state is in the tenant's slot")
    }

    @Test func threeKeysOfOneTenantStayWithinEachAllowanceAcrossTwoReplicas() async throws {
        let cluster = try await Cluster(replicas: 2)
        let tenant = try await Self.createTenant(cluster, #"{"name":"acme","policies":[\#(Self.policy("second", rate: 30, burst: 10))]}"#)
        var created: [String] = []
        for _ in 0..<3 {
            created.append(try await cluster.createKey(
                scopes: ["predict"], policies: "[\(Self.policy("second", rate: 20, burst: 5))]", extra: #","tenant":"\#(tenant)""#).key)
        }
        // 3× each key's rate for 3 s, spread over both replicas: 60 requests a second per key.
        let results = Answers()
        let keys = created
        let started = ContinuousClock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            for tick in 0..<60 {
                for (index, key) in keys.enumerated() {
                    group.addTask {
                        try await Task.sleep(until: started + .milliseconds(50 * tick))
                        for offset in 0..<3 {
                            let response = try await HTTP.json(
                                "POST", cluster.replicas[(tick + offset) % 2].baseURL + "/v1/predict", key: key, Cluster.setosa)
                            results.list.withLock { $0.append((index, response.status, Allowance.slot(response.header("Sluice-Slot")))) }
                        }
                    }
                }
            }
            try await group.waitForAll()
        }
        let answers = results.list.withLock { $0 }
        #expect(answers.allSatisfy { $0.status == 200 || $0.status == 429 }, "\(Set(answers.map(\.status)))")
        let admitted = answers.filter { $0.status == 200 }
        for index in keys.indices {
            let slots = admitted.filter { $0.key == index }.compactMap(\.slot).sorted()
            #expect(Allowance.overAdmission(slots, burst: 5, interval: 50_000) == 0, "key \(index): more than its own allowance")
        }
        let all = admitted.compactMap(\.slot).sorted()
        #expect(all.count == admitted.count, "every admission carries its slot")
        #expect(Allowance.overAdmission(all, burst: 10, interval: 33_334) == 0, "the tenant's keys together: more than its allowance")
        // The tenant, not the keys, was the limit: 3 s × 30/s + 10, near enough all of it used.
        #expect(admitted.count >= 85 && admitted.count <= 100, "\(admitted.count) admitted of \(answers.count)")
        print("tenant 30/s: \(admitted.count) of \(answers.count) admitted in 3 s, per key \(keys.indices.map { i in admitted.count { $0.key == i } })")
    }

    @Test func aDelayKeyIsHeldForItsTenantsSlot() async throws {
        let cluster = try await Cluster()
        // The tenant, not the key, is the limit: its slot is reserved like the key's.
        let tenant = try await Self.createTenant(cluster, #"{"name":"acme","policies":[\#(Self.policy("second", rate: 2, burst: 1))]}"#)
        let (key, _) = try await cluster.createKey(
            scopes: ["predict"], policies: "[\(Self.policy("second", rate: 100, burst: 100))]",
            extra: #","tenant":"\#(tenant)","overflow":"delay","max_delay":2"#)
        let first = try await HTTP.json("POST", cluster.url + "/v1/predict", key: key, Cluster.setosa)
        #expect(first.status == 200 && first.header("Sluice-Delay") == nil)
        let held = try await HTTP.json("POST", cluster.url + "/v1/predict", key: key, Cluster.setosa)
        let delay = try #require(held.header("Sluice-Delay").flatMap(Double.init), "\(held.status) \(held.text)")
        #expect(held.status == 200 && delay > 0.2 && delay < 1.0, "held for the tenant's next slot (0.5 s apart): \(delay)")
    }

    @Test func tenantsAreManagedAndBadReferencesRefused() async throws {
        let cluster = try await Cluster()
        let tenant = try await Self.createTenant(cluster, #"{"name":"acme","quota_per_day":1000}"#)
        let shown = try await Self.admin(cluster, "GET", "/v1/tenants/\(tenant)")
        #expect(shown.status == 200 && shown.json?["quota_per_day"] as? Int == 1000 && (shown.json?["keys"] as? [String])?.isEmpty == true)

        // Bad input: an unknown tenant, a policy name twice, Sluice's own names, no budget at all.
        let unknown = try await Self.admin(cluster, "POST", "/v1/keys", #"{"name":"k","scopes":["predict"],"tenant":"tn0000000000000000"}"#)
        #expect(unknown.status == 422 && (unknown.json?["errors"] as? [[String: Any]])?.first?["pointer"] as? String == "/tenant", "\(unknown.text)")
        #expect(!unknown.text.contains("tn0000000000000000"), "the id given is not echoed")
        for body in [
            #"{"name":"t","policies":[\#(Self.policy("a", rate: 1, burst: 1)),\#(Self.policy("a", rate: 2, burst: 2))]}"#,
            #"{"name":"t","policies":[\#(Self.policy("daily", rate: 1, burst: 1))]}"#,
            #"{"name":"t"}"#,
            #"{"name":"t","policies":[],"debug":true}"#,
        ] {
            let refused = try await Self.admin(cluster, "POST", "/v1/tenants", "\(body)")
            #expect(refused.status == 422, "\(body): \(refused.status) \(refused.text)")
        }

        // Keys join, leave and are revoked with their tenant.
        let (key, id) = try await cluster.createKey(scopes: ["predict"], extra: #","tenant":"\#(tenant)""#)
        #expect(try await Self.admin(cluster, "GET", "/v1/keys/\(id)").json?["tenant"] as? String == tenant)
        #expect((try await Self.admin(cluster, "GET", "/v1/tenants/\(tenant)").json?["keys"] as? [String]) == [id])
        let conflict = try await Self.admin(cluster, "DELETE", "/v1/tenants/\(tenant)")
        #expect(conflict.status == 409 && conflict.header("Content-Type") == "application/problem+json", "\(conflict.text)")
        let left = try await Self.admin(cluster, "PATCH", "/v1/keys/\(id)", #"{"tenant":""}"#)
        #expect(left.status == 200 && left.json?["tenant"] == nil, "\(left.text)")
        let (member, _) = try await cluster.createKey(scopes: ["predict"], extra: #","tenant":"\#(tenant)""#)
        #expect(try await HTTP.json("POST", cluster.url + "/v1/predict", key: member, Cluster.setosa).status == 200)
        #expect(try await Self.admin(cluster, "DELETE", "/v1/tenants/\(tenant)?cascade=true").status == 204)
        #expect(try await HTTP.json("POST", cluster.url + "/v1/predict", key: member, Cluster.setosa).status == 401, "revoked with its tenant")
        #expect(try await HTTP.json("POST", cluster.url + "/v1/predict", key: key, Cluster.setosa).status == 200, "the key that left is not")
        #expect(try await Self.admin(cluster, "GET", "/v1/tenants/\(tenant)").status == 404)
    }

    @Test func aTenantChangeReachesItsKeysAtOnceAndKeepsTheirState() async throws {
        let cluster = try await Cluster(replicas: 2)
        let tenant = try await Self.createTenant(cluster, #"{"name":"acme","policies":[\#(Self.policy("minute", rate: 3, period: 60, burst: 3))]}"#)
        let (key, _) = try await cluster.createKey(scopes: ["predict"], extra: #","tenant":"\#(tenant)""#)
        for _ in 0..<3 { #expect(try await HTTP.json("POST", cluster.replicas[1].baseURL + "/v1/predict", key: key, Cluster.setosa).status == 200) }
        let refused = try await HTTP.json("POST", cluster.replicas[1].baseURL + "/v1/predict", key: key, Cluster.setosa)
        #expect(refused.status == 429 && refused.json?["violated-policies"] as? [String] == ["tenant:minute"], "\(refused.text)")
        // Raised on replica 0 (burst 10 in 2 minutes' worth): replica 1 serves the key again
        // within a second.
        let raised = #"{"policies":[\#(Self.policy("minute", rate: 5, period: 60, burst: 10))]}"#
        #expect(try await Self.admin(cluster, "PATCH", "/v1/tenants/\(tenant)", raised).status == 200)
        let changedAt = ContinuousClock.now
        var admitted = 0
        while admitted == 0, ContinuousClock.now - changedAt < .seconds(1) {
            if try await HTTP.json("POST", cluster.replicas[1].baseURL + "/v1/predict", key: key, Cluster.setosa).status == 200 { admitted += 1 }
        }
        #expect(admitted == 1, "the raised budget reached the other replica within 1 s")
        // The state was kept: the 3 requests of the last minute still count (60 s of the new
        // 120 s tolerance), so 5 more fit, not 10.
        while admitted < 12, try await HTTP.json("POST", cluster.url + "/v1/predict", key: key, Cluster.setosa).status == 200 { admitted += 1 }
        #expect(admitted == 5, "\(admitted) admitted after the change")
    }
}

/// Answers collected from concurrent requests.
private final class Answers: Sendable {
    let list = Mutex<[(key: Int, status: Int, slot: Int64?)]>([])
}
