import Foundation
import SluiceTestSupport
import Synchronization
import Testing

/// Redis stopped for 10 s under load, then restarted (with its data: AOF), three replicas.
@Suite("Degraded mode: on_redis_failure", .serialized)
struct DegradedModeTests {
    struct Answer: Sendable {
        var key: String
        var sentAt: Double
        var status: Int
        var degraded: Bool
    }

    @Test func localKeysAreServedWithinTheirShareWhileRedisIsDownAndClosedOnesFailSecure() async throws {
        let cluster = try await Cluster(replicas: 3, redisArguments: ["--appendonly", "yes", "--appendfsync", "always"])
        let policy = #"[{"name":"default","rate":20,"period":1,"burst":10}]"#
        let local = #", "on_redis_failure": "local""#
        let flooded = try await cluster.createKey(scopes: ["predict"], policies: policy, extra: local)
        let paced = try await cluster.createKey(scopes: ["predict"], policies: policy, extra: local)
        let closed = try await cluster.createKey(scopes: ["predict"], policies: policy)
        let trainer = try await cluster.createKey(scopes: ["train"])
        let monitor = try await cluster.createKey(scopes: ["metrics"])
        // `local` is refused for keys that can do more than predict.
        let refused = try await HTTP.json(
            "POST", cluster.url + "/v1/keys", key: cluster.adminKey, #"{"name":"x","scopes":["predict","train"],"on_redis_failure":"local"}"#)
        #expect(refused.status == 422 && refused.text.contains("/on_redis_failure"), "\(refused.status) \(refused.text)")
        let shown = try await HTTP.json("GET", cluster.url + "/v1/keys/\(flooded.id)", key: cluster.adminKey, "")
        #expect(shown.json?["on_redis_failure"] as? String == "local")

        // Every replica has seen every key (what a replica never saw, it cannot serve in an outage).
        for replica in cluster.replicas {
            for key in [flooded.key, paced.key, closed.key] {
                _ = try await HTTP.json("POST", replica.baseURL + "/v1/predict", key: key, Cluster.setosa)
            }
        }
        try await Task.sleep(for: .seconds(2))  // heartbeats: three live replicas counted

        let answers = Shared([Answer]())
        let start = ContinuousClock.now
        func elapsed() -> Double { (ContinuousClock.now - start).seconds }
        let total = 16.0, outageStart = 2.0, outageEnd = 12.0
        // One client per key: flooded and closed at 5× their rate (100/s), paced at half (10/s),
        // each request to the next replica in turn. A client that fell behind (requests waiting
        // for Redis' timeout as it goes down) does not catch up in a burst: it keeps its pace.
        func drive(_ name: String, key: String, perSecond: Double) async {
            var n = 0
            var due = 0.0
            while elapsed() < total {
                due = max(due + 1 / perSecond, elapsed())
                if due > elapsed() { try? await Task.sleep(for: .milliseconds(Int((due - elapsed()) * 1000))) }
                let replica = cluster.replicas[n % 3]
                n += 1
                let sentAt = elapsed()
                let response = try? await HTTP.json("POST", replica.baseURL + "/v1/predict", key: key, Cluster.setosa)
                let answer = Answer(key: name, sentAt: sentAt, status: response?.status ?? 0, degraded: response?.header("Sluice-Degraded") == "local")
                answers.value.withLock { $0.append(answer) }
            }
        }
        async let a: Void = drive("flooded", key: flooded.key, perSecond: 100)
        async let b: Void = drive("paced", key: paced.key, perSecond: 10)
        async let c: Void = drive("closed", key: closed.key, perSecond: 100)
        async let outage: (readyz: Int, body: String, admin: Int, train: Int) = {
            try await Task.sleep(for: .seconds(outageStart))
            cluster.redis.stop()
            try await Task.sleep(for: .seconds(3))
            let readyz = try await HTTP.send("GET", cluster.url + "/readyz")
            let admin = try await HTTP.json("POST", cluster.url + "/v1/keys", key: cluster.adminKey, #"{"name":"x","scopes":["predict"]}"#)
            let train = try await HTTP.send(
                "POST", cluster.url + "/v1/models", headers: ["Authorization": "Bearer \(trainer.key)", "Content-Type": "text/csv"],
                body: Data(try Cluster.irisCSV().utf8))
            try await Task.sleep(for: .seconds(outageEnd - outageStart - 3))
            try cluster.redis.start()
            return (readyz.status, readyz.text, admin.status, train.status)
        }()
        _ = await (a, b, c)
        let during = try await outage
        #expect(during.readyz == 200 && during.body.contains("degraded"), "\(during)")
        #expect(during.admin == 503 && during.train == 503, "admin and train fail secure: \(during)")

        let all = answers.value.withLock { $0 }
        func inOutage(_ answer: Answer) -> Bool { answer.sentAt > outageStart + 0.2 && answer.sentAt < outageEnd }
        let pacedOutage = all.filter { $0.key == "paced" && inOutage($0) }
        let pacedOK = pacedOutage.filter { $0.status == 200 }
        #expect(Double(pacedOK.count) >= 0.95 * Double(pacedOutage.count), "in-limit requests of a local key: \(pacedOK.count) of \(pacedOutage.count) answered 200; others: \(pacedOutage.filter { $0.status != 200 }.map { "\($0.status)@\(String(format: "%.2f", $0.sentAt))" })")
        #expect(pacedOK.allSatisfy { $0.degraded }, "answers decided locally say Sluice-Degraded: local")
        let closedOutage = all.filter { $0.key == "closed" && $0.sentAt > outageStart + 0.5 && $0.sentAt < outageEnd }
        #expect(closedOutage.allSatisfy { $0.status == 503 }, "closed keys fail secure: \(Dictionary(grouping: closedOutage, by: \.status).mapValues(\.count))")
        // The bound: burst + rate × outage, plus at most one local burst per replica (3 × ⌊10/3⌋).
        let floodedAdmitted = all.filter { $0.key == "flooded" && $0.sentAt >= outageStart && $0.sentAt < outageEnd && $0.status == 200 }.count
        let bound = 10 + Int(20 * (outageEnd - outageStart)) + 9
        #expect(floodedAdmitted <= bound && floodedAdmitted >= 150, "flooded local key admitted \(floodedAdmitted) during the outage; bound \(bound)")
        // After recovery Redis decides again (nothing degraded), and the closed key is served.
        let after = all.filter { $0.sentAt > outageEnd + 2.5 }
        #expect(!after.isEmpty && after.allSatisfy { !$0.degraded }, "after recovery Redis decides")
        #expect(after.contains { $0.key == "closed" && $0.status == 200 })
        let afterAdmitted = after.filter { $0.key == "flooded" && $0.status == 200 }.count
        let afterSpan = total - (outageEnd + 2.5)
        #expect(afterAdmitted <= 10 + Int(20 * afterSpan) + 1, "windows hold after recovery: \(afterAdmitted) in \(afterSpan) s")
        print("outage: paced \(pacedOK.count)/\(pacedOutage.count) answered 200; flooded admitted \(floodedAdmitted) (bound \(bound)); closed \(closedOutage.count) all 503; after recovery flooded \(afterAdmitted) in \(afterSpan) s")

        let metrics = try await HTTP.send("GET", cluster.url + "/metrics", headers: ["Authorization": "Bearer \(monitor.key)"])
        #expect(metrics.text.contains(#"sluice_limiter_mode{mode="redis"} 1"#) && metrics.text.contains(#"sluice_limiter_mode{mode="local"} 0"#), "\(metrics.status) \(metrics.text.split(separator: "\n").filter { $0.contains("mode") })")
    }
}
