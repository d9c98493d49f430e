import Foundation
import SluiceTestSupport
import Testing

/// Admission in process: each verdict — now, hold, enqueue, refused — as a client sees it, on a
/// real Redis. (Across replicas and workers: DeferralTests, LocalClusterTests.)
@Suite("In-process: admission verdicts", .serialized)
struct InProcessAdmissionTests {
    static func policy(rate: Int, period: Int = 1, burst: Int) -> String {
        #"[{"name":"default","rate":\#(rate),"period":\#(period),"burst":\#(burst)}]"#
    }

    @Test func aRejectKeyIsServedNowThenRefusedWithRetryAfter() async throws {
        try await InProcessReplica.run { replica in
            let (key, _) = try await replica.createKey(scopes: ["predict"], policies: Self.policy(rate: 1, period: 60, burst: 2))
            for remaining in [1, 0] {
                let served = try await replica.json("POST", "/v1/predict", key: key, Cluster.setosa)
                #expect(served.status == 200 && served.header("Sluice-Delay") == nil)
                #expect(served.header("RateLimit")?.hasPrefix("\"default\";r=\(remaining);") == true, "\(served.header("RateLimit") ?? "")")
                #expect(served.header("Sluice-Slot") != nil)
            }
            let refused = try await replica.json("POST", "/v1/predict", key: key, Cluster.setosa)
            #expect(refused.status == 429 && refused.header("Content-Type") == "application/problem+json")
            #expect(refused.json?["type"] as? String == "https://iana.org/assignments/http-problem-types#quota-exceeded")
            #expect(refused.json?["violated-policies"] as? [String] == ["default"])
            #expect((Int(refused.header("Retry-After") ?? "") ?? 0) >= 29, "a slot every 30 s: \(refused.header("Retry-After") ?? "none")")
            #expect(refused.header("RateLimit")?.hasPrefix(#""default";r=0;"#) == true)
        }
    }

    @Test func aDelayKeyIsHeldUntilItsSlotOrQueuedWhenTheClientPrefers() async throws {
        try await InProcessReplica.run { replica in
            let (key, _) = try await replica.createKey(
                scopes: ["predict"], policies: Self.policy(rate: 5, burst: 1), extra: #","overflow":"delay","max_delay":2"#)
            let first = try await replica.json("POST", "/v1/predict", key: key, Cluster.setosa)
            #expect(first.status == 200 && first.header("Sluice-Delay") == nil)
            let held = try await replica.json("POST", "/v1/predict", key: key, Cluster.setosa)
            let delay = try #require(held.header("Sluice-Delay").flatMap(Double.init), "\(held.status) \(held.text)")
            #expect(held.status == 200 && delay >= 0.1 && delay < 1.5, "held one emission interval (0.2 s): \(delay)")
            let queued = try await replica.json("POST", "/v1/predict", key: key, headers: ["Prefer": "respond-async"], Cluster.setosa)
            #expect(queued.status == 202 && queued.header("Preference-Applied") == "respond-async", "\(queued.status) \(queued.text)")
            #expect(queued.header("Location")?.hasPrefix("/v1/jobs/") == true && queued.json?["status"] as? String == "queued")
            // Invalid input is never deferred: charged one unit and refused now.
            let invalid = try await replica.json("POST", "/v1/predict", key: key, #"{"features":{}}"#)
            #expect(invalid.status == 422 || invalid.status == 429, "\(invalid.status)")
            #expect(invalid.header("Sluice-Delay") == nil)
        }
    }

    @Test func aQueueKeyIsQueuedUpToItsMaxDepthThenRefused() async throws {
        try await InProcessReplica.run { replica in
            let (key, _) = try await replica.createKey(
                scopes: ["predict"], policies: Self.policy(rate: 1, burst: 1), extra: #","overflow":"queue","max_depth":2"#)
            #expect(try await replica.json("POST", "/v1/predict", key: key, Cluster.setosa).status == 200)
            for _ in 0..<2 {
                let queued = try await replica.json("POST", "/v1/predict", key: key, Cluster.setosa)
                #expect(queued.status == 202 && (Int(queued.header("Retry-After") ?? "") ?? 0) >= 1, "\(queued.status) \(queued.text)")
                let location = try #require(queued.header("Location"))
                let job = try await replica.send("GET", location, headers: ["Authorization": "Bearer \(key)"])
                #expect(job.status == 202 && job.json?["status"] as? String == "queued", "\(job.text)")
            }
            let full = try await replica.json("POST", "/v1/predict", key: key, Cluster.setosa)
            #expect(full.status == 429 && full.json?["policy"] as? String == "max_depth", "\(full.status) \(full.text)")
            // The decision's RateLimit fields, once.
            #expect(full.header("RateLimit")?.components(separatedBy: "\"default\"").count == 2, "\(full.header("RateLimit") ?? "")")
            // Invalid input over the limit is refused, never queued.
            let invalid = try await replica.json("POST", "/v1/predict", key: key, #"{"features":{}}"#)
            #expect(invalid.status == 429 && invalid.json?["policy"] as? String == "default", "\(invalid.status) \(invalid.text)")
        }
    }

    @Test func aKeyWithoutTheScopeIsChargedAndRefused() async throws {
        try await InProcessReplica.run { replica in
            let (key, _) = try await replica.createKey(scopes: ["metrics"], policies: Self.policy(rate: 1, period: 60, burst: 3))
            for remaining in [2, 1] {
                let forbidden = try await replica.json("POST", "/v1/predict", key: key, Cluster.setosa)
                #expect(forbidden.status == 403 && forbidden.header("RateLimit")?.hasPrefix("\"default\";r=\(remaining);") == true)
            }
            #expect(try await replica.send("GET", "/metrics", headers: ["Authorization": "Bearer \(key)"]).status == 200)
            #expect(try await replica.json("POST", "/v1/predict", key: key, Cluster.setosa).status == 429, "charged like any request")
        }
    }
}
