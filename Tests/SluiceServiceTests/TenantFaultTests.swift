import Foundation
import SluiceAuth
import SluiceTestSupport
import Synchronization
import Testing

/// Tenants where things move and fail: a live reshard of the tenant's Redis Cluster slot under
/// load, and a Redis outage with the tenant's keys served locally.
@Suite("Tenants under resharding and outages", .serialized)
struct TenantFaultTests {
    /// Each key at `perSecond` over the replicas in turn for `seconds`: every answer with its slot.
    static func offer(_ keys: [String], perSecond: Double, to replicas: [ServiceProcess], for seconds: Double) async throws
        -> [(key: Int, status: Int, slot: Int64?)]
    {
        let started = ContinuousClock.now
        let answers = TenantAnswers()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (index, key) in keys.enumerated() {
                group.addTask {
                    var sent = 0
                    while (ContinuousClock.now - started).seconds < seconds {
                        let response = try await HTTP.json("POST", "\(replicas[sent % replicas.count].baseURL)/v1/predict", key: key, Cluster.setosa)
                        answers.list.withLock { $0.append((index, response.status, Allowance.slot(response.header("Sluice-Slot")))) }
                        sent += 1
                        try await Task.sleep(until: started + .milliseconds(Int(Double(sent) * 1000 / perSecond)))
                    }
                }
            }
            try await group.waitForAll()
        }
        return answers.list.withLock { $0 }
    }

    @Test func aLiveReshardOfTheTenantSlotFailsNothingAndAdmitsExactly() async throws {
        let redis = try RedisClusterServer()
        let (replicas, adminKey, _) = try await RedisClusterServiceTests.replicas(on: redis, keys: 0, named: "t")
        let created = try await HTTP.politeJSON(
            "POST", "\(replicas[0].baseURL)/v1/tenants", key: adminKey, #"{"name":"acme","policies":[{"name":"second","rate":30,"period":1,"burst":10}]}"#)
        let tenant = try #require(created.json?["id"] as? String, "\(created.text)")
        var keys: [String] = []
        for index in 0..<3 {
            let response = try await HTTP.politeJSON(
                "POST", "\(replicas[0].baseURL)/v1/keys", key: adminKey,
                #"{"name":"k\#(index)","scopes":["predict"],"policies":[{"name":"second","rate":20,"period":1,"burst":5}],"tenant":"\#(tenant)"}"#)
            keys.append(try #require(response.json?["key"] as? String, "\(response.text)"))
        }
        let tenantState = "sluice:rl:{t:\(tenant)}:t:second"
        let slot = try #require(Int(try redis.cli(redis.nodes[0], "CLUSTER", "KEYSLOT", tenantState).trimmingCharacters(in: .whitespacesAndNewlines)))

        // 40/s per key (3 × 40 = 4× the tenant's rate) for 6 s while the slot moves.
        let load = Task { try await Self.offer(keys, perSecond: 40, to: replicas, for: 6) }
        try await Task.sleep(for: .seconds(1.5))
        // The tenant's record, its state and its keys' state, its usage: one slot, moved in batches
        // of 3 keys as `redis-cli --cluster reshard` moves them. A call whose keys are split, or
        // partly absent (a key's state expires when the tenant holds it back), gets TRYAGAIN
        // until the slot is assigned: the router retries it within the command timeout.
        let (source, destination, inSlot) = try redis.beginMigration(of: slot)
        #expect(inSlot.contains(tenantState) && inSlot.contains { $0.hasPrefix("sluice:tenant:") }, "\(inSlot)")
        for start in stride(from: 0, to: inSlot.count, by: 3) {
            try redis.migrate(Array(inSlot[start..<min(start + 3, inSlot.count)]), from: source, to: destination)
        }
        try await Task.sleep(for: .milliseconds(100))  // requests meet ASK (and TRYAGAIN) meanwhile
        try redis.assign(slot, to: destination)
        let answers = try await load.value

        let failed = answers.filter { $0.status != 200 && $0.status != 429 }
        #expect(failed.isEmpty, "failed: \(failed.map(\.status)); \(replicas.flatMap { $0.log.split(separator: "\n").filter { $0.contains("error") }.suffix(3) })")
        let admitted = answers.filter { $0.status == 200 }
        for index in keys.indices {
            let slots = admitted.filter { $0.key == index }.compactMap(\.slot).sorted()
            #expect(Allowance.overAdmission(slots, burst: 5, interval: 50_000) == 0, "key \(index)")
        }
        let all = admitted.compactMap(\.slot).sorted()
        #expect(all.count == admitted.count)
        #expect(Allowance.overAdmission(all, burst: 10, interval: 33_334) == 0, "the tenant's keys together")
        #expect(admitted.count >= 150, "the tenant kept being served: \(admitted.count) admitted of \(answers.count) in 6 s")
        print("tenant slot \(slot) moved under load: \(admitted.count) of \(answers.count) admitted, none failed")
    }

    @Test func aTenantsLocalKeysStayWithinTheTenantsBoundWhileRedisIsDown() async throws {
        let cluster = try await Cluster(replicas: 3, redisArguments: ["--appendonly", "yes", "--appendfsync", "always"])
        let created = try await HTTP.json(
            "POST", cluster.url + "/v1/tenants", key: cluster.adminKey, #"{"name":"acme","policies":[{"name":"second","rate":20,"period":1,"burst":10}]}"#)
        let tenant = try #require(created.json?["id"] as? String, "\(created.text)")
        var keys: [String] = []
        for _ in 0..<2 {
            keys.append(try await cluster.createKey(
                scopes: ["predict"], policies: #"[{"name":"second","rate":100,"period":1,"burst":50}]"#,
                extra: #","on_redis_failure":"local","tenant":"\#(tenant)""#).key)
        }
        // Every replica has seen both keys and the tenant.
        for replica in cluster.replicas {
            for key in keys { _ = try await HTTP.json("POST", replica.baseURL + "/v1/predict", key: key, Cluster.setosa) }
        }
        try await Task.sleep(for: .seconds(2))  // heartbeats: three live replicas counted

        let outage = 8.0
        let load = Task {
            try await Self.offer(keys, perSecond: 60, to: cluster.replicas, for: outage + 1)  // 6× the tenant's rate
        }
        try await Task.sleep(for: .seconds(0.5))
        cluster.redis.stop()
        let stopped = ContinuousClock.now
        try await Task.sleep(for: .seconds(outage))
        try cluster.redis.start()
        let answers = try await load.value
        _ = stopped
        let admitted = answers.filter { $0.status == 200 }.count
        // burst + rate × (the run) + one local burst per replica (3 × ⌊10/3⌋): the stated bound.
        let bound = 10 + Int(20 * (outage + 1.5)) + 9
        #expect(admitted <= bound, "the tenant's keys admitted \(admitted); bound \(bound)")
        #expect(admitted >= Int(0.6 * 20 * outage), "the tenant's local keys kept being served: \(admitted)")
        #expect(answers.allSatisfy { [200, 429, 503].contains($0.status) }, "\(Set(answers.map(\.status)))")
        print("tenant during a Redis outage: \(admitted) admitted of \(answers.count); bound \(bound)")
    }
}

/// Answers collected from concurrent requests.
final class TenantAnswers: Sendable {
    let list = Mutex<[(key: Int, status: Int, slot: Int64?)]>([])
}
