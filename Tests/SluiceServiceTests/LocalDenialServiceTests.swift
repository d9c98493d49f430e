import Foundation
import SluiceAuth
import SluiceTestSupport
import Testing

/// Floods against one replica cost Redis (almost) nothing once Redis has said no.
@Suite("Local denial in a replica", .serialized)
struct LocalDenialServiceTests {
    /// Every command Redis ran so far, scripts' own commands included.
    private func commands(_ redis: RedisServer) async throws -> Int {
        let client = redis.client()
        defer { client.shutdown() }
        let stats = try await client.send("INFO", "commandstats").string ?? ""
        return stats.matches(of: /calls=(\d+)/).compactMap { Int($0.1) }.reduce(0, +)
    }

    @Test func floodsOfDeniedAndMadeUpKeysCostNoRedisCalls() async throws {
        let cluster = try await Cluster()
        let flooded = try await cluster.createKey(scopes: ["predict"], policies: #"[{"name":"default","rate":1,"period":60,"burst":5}]"#)
        let good = try await cluster.createKey(scopes: ["predict"])
        let monitor = try await cluster.createKey(scopes: ["metrics"])
        let url = cluster.url + "/v1/predict"

        // One key far over its limit: after the reply that denies it, the replica answers alone.
        for _ in 0..<6 { _ = try await HTTP.json("POST", url, key: flooded.key, Cluster.setosa) }
        let before = try await commands(cluster.redis)
        var refused = 0
        for _ in 0..<200 {
            let response = try await HTTP.json("POST", url, key: flooded.key, Cluster.setosa)
            if response.status == 429, response.json?["type"] as? String == "https://iana.org/assignments/http-problem-types#quota-exceeded",
                Int(response.header("Retry-After") ?? "") ?? 0 > 50, response.header("RateLimit")?.contains("\"default\";r=0;") == true {
                refused += 1
            }
        }
        let floodCalls = try await commands(cluster.redis) - before
        #expect(refused == 200, "every request refused with the 429 Redis would give")
        // Heartbeats and model polls run meanwhile; 200 requests to Redis would be ≥ 600 commands.
        #expect(floodCalls < 60, "\(floodCalls) Redis commands for 200 denied requests")

        // Made-up keys from one address: throttled after 10 failures, then refused without a lookup.
        for _ in 0..<12 { _ = try await HTTP.json("POST", url, key: APIKey.generate().revealed, Cluster.setosa) }
        let beforeMadeUp = try await commands(cluster.redis)
        var statuses: [Int: Int] = [:]
        for _ in 0..<200 {
            statuses[try await HTTP.json("POST", url, key: APIKey.generate().revealed, Cluster.setosa).status, default: 0] += 1
        }
        let madeUpCalls = try await commands(cluster.redis) - beforeMadeUp
        // 30 failures a minute are allowed: one every 2 s is a 401, the rest 429.
        #expect(Set(statuses.keys).isSubset(of: [401, 429]) && statuses[429, default: 0] >= 195, "\(statuses)")
        #expect(madeUpCalls < 60, "\(madeUpCalls) Redis commands for 200 made-up keys (a lookup and a limiter call each before)")
        // A real key from the same (throttled) address still works, even one this replica never cached.
        let fresh = try await cluster.createKey(scopes: ["predict"])
        #expect(try await HTTP.json("POST", url, key: good.key, Cluster.setosa).status == 200)
        #expect(try await HTTP.json("POST", url, key: fresh.key, Cluster.setosa).status == 200)

        let metrics = try await HTTP.send("GET", cluster.url + "/metrics", headers: ["Authorization": "Bearer \(monitor.key)"]).text
        let local = metrics.matches(of: /sluice_limiter_local_denials_total\{policy="(\w+)"\} (\d+)/).reduce(into: [String: Int]()) {
            $0[String($1.1)] = Int($1.2)
        }
        #expect((local["default"] ?? 0) >= 190 && (local["auth"] ?? 0) >= 190, "\(local)")
        print("200 denied requests: \(floodCalls) Redis commands; 200 made-up keys: \(madeUpCalls); local denials \(local)")
    }

    @Test func localDenialCanBeTurnedOffAndNonsenseIsRefused() async throws {
        let cluster = try await Cluster(replicaArguments: ["--local-deny-entries", "0"])
        let flooded = try await cluster.createKey(scopes: ["predict"], policies: #"[{"name":"default","rate":1,"period":60,"burst":1}]"#)
        for _ in 0..<2 { _ = try await HTTP.json("POST", cluster.url + "/v1/predict", key: flooded.key, Cluster.setosa) }
        let before = try await commands(cluster.redis)
        for _ in 0..<50 { _ = try await HTTP.json("POST", cluster.url + "/v1/predict", key: flooded.key, Cluster.setosa) }
        #expect(try await commands(cluster.redis) - before >= 150, "off: every request asks Redis")

        for value in ["-1", "many", "10000001"] {
            let (status, output) = try ServiceProcess.run(
                arguments: ["serve", "--port", String(try RedisServer.freePort()), "--local-deny-entries", value],
                environment: ["SLUICE_ADMIN_KEY": cluster.adminKey, "SLUICE_MODEL_SIGNING_KEY": cluster.signingKey])
            #expect(status != 0 && (output.contains("local-deny-entries") || output.contains("SLUICE_LOCAL_DENY_ENTRIES")), "\(value): exit \(status) \(output.suffix(300))")
        }
    }
}

@Suite("Retry-After jitter", .serialized)
struct RetryAfterJitterTests {
    /// 100 clients refused at once: with `retry_after_jitter` 5 their retries spread over ≥ 4 s,
    /// none told to come back before the true wait; without it they all get the same second.
    @Test func clientsRefusedTogetherAreToldToComeBackAtDifferentTimes() async throws {
        let cluster = try await Cluster()
        let policy = #"[{"name":"default","rate":1,"period":60,"burst":1}]"#
        let jittered = try await cluster.createKey(scopes: ["predict"], policies: policy, extra: #", "retry_after_jitter": 5"#)
        let plain = try await cluster.createKey(scopes: ["predict"], policies: policy)
        let shown = try await HTTP.json("GET", cluster.url + "/v1/keys/\(jittered.id)", key: cluster.adminKey, "")
        #expect(shown.json?["retry_after_jitter"] as? Double == 5)
        let refused = try await HTTP.json(
            "POST", cluster.url + "/v1/keys", key: cluster.adminKey, #"{"name":"x","scopes":["predict"],"retry_after_jitter":61}"#)
        #expect(refused.status == 422 && refused.text.contains("/retry_after_jitter"))

        func retryAfters(_ key: String) async throws -> [Int] {
            _ = try await HTTP.json("POST", cluster.url + "/v1/predict", key: key, Cluster.setosa)
            return try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<100 {
                    group.addTask {
                        let response = try await HTTP.json("POST", cluster.url + "/v1/predict", key: key, Cluster.setosa)
                        #expect(response.status == 429)
                        let header = Int(response.header("Retry-After") ?? "") ?? -1
                        #expect(response.json?["retry_after"] as? Int == header, "body and header agree")
                        return header
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
        }
        let spread = try await retryAfters(jittered.key)
        let same = try await retryAfters(plain.key)
        // The true wait is just under 60 s: rounded up, 60 (59 if a second passed meanwhile).
        #expect(spread.min()! >= 59 && spread.max()! - spread.min()! >= 4, "with jitter 5: \(spread.min()!)...\(spread.max()!)")
        #expect(same.max()! - same.min()! <= 1 && same.min()! >= 59, "without: \(Set(same))")
    }
}
