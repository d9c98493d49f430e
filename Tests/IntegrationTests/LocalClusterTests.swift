import Foundation
import SluiceTestSupport
import Testing

/// `scripts/cluster up` on loopback (Redis with ACLs, 3 replicas, 2 workers, HAProxy), then
/// `sluice loadtest` through the load balancer: three keys, one per overflow mode, each offered 5×
/// its limit. Then a replica is killed mid-run, and `scripts/cluster down` stops everything.
@Suite("Local cluster behind HAProxy, load-tested", .serialized)
struct LocalClusterTests {
    let directory: String
    let lbPort: Int
    let environment: [String: String]

    init() throws {
        directory = try Repository.temporaryDirectory("sluice-cluster")
        lbPort = try RedisServer.freePort()
        environment = ["SLUICE_CLUSTER_DIR": directory, "SLUICE_LB_PORT": String(lbPort), "SLUICE_BINARY": ServiceProcess.binary]
    }

    private func cluster(_ command: String) throws -> (status: Int32, output: String) {
        try runCommand([Repository.path("scripts/cluster"), command], environment: environment)
    }

    private func loadTest(_ extra: [String]) -> [String] {
        [ServiceProcess.binary, "loadtest", "--url", "http://127.0.0.1:\(lbPort)", "--admin-key-file", "\(directory)/secrets/sluice-admin-key",
         "--polite", "--json"] + extra
    }

    /// The JSON report from a run's output (progress lines come first, on standard error).
    private func report(_ output: String) throws -> [[String: Any]] {
        let start = try #require(output.range(of: "\n{\n") ?? output.range(of: "{\n"))
        let json = try JSONSerialization.jsonObject(with: Data(output[start.lowerBound...].utf8)) as? [String: Any]
        return try #require(json?["keys"] as? [[String: Any]], "no report in: \(output.suffix(2000))")
    }

    private func pid(_ name: String) throws -> Int32 {
        try #require(Int32(try String(contentsOfFile: "\(directory)/pids/\(name).pid", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)))
    }

    @Test func globalLimitsHoldThroughTheLoadBalancerAndSurviveALostReplica() async throws {
        let up = try cluster("up")
        defer { _ = try? cluster("down") }
        try #require(up.status == 0, "\(up.output.suffix(3000))")
        #expect(up.output.contains("\(directory)/secrets/sluice-admin-key"))
        #expect(up.output.contains("curl -s -X POST http://127.0.0.1:\(lbPort)/v1/keys"))
        for secret in ["sluice-admin-key", "sluice-model-signing-key", "sluice-replica", "sluice-worker"] {
            let mode = try FileManager.default.attributesOfItem(atPath: "\(directory)/secrets/\(secret)")[.posixPermissions] as? Int
            #expect(mode == 0o600, "\(secret) is \(String(mode ?? 0, radix: 8))")
        }
        let status = try cluster("status").output
        for (name, health) in [("redis", "pong"), ("replica-1", "ready"), ("replica-3", "ready"), ("worker-2", "healthy"), ("lb", "ready")] {
            #expect(status.split(separator: "\n").contains { $0.hasPrefix(name) && $0.hasSuffix(health) }, "\(name) in:\n\(status)")
        }

        // 15 s, three keys offered 5× their limits, through HAProxy to 3 replicas.
        let run = try runCommand(loadTest(["--duration", "15"]))
        #expect(run.status == 0, "loadtest exit \(run.status)")
        let keys = try report(run.output)
        #expect(Set(keys.compactMap { $0["overflow"] as? String }) == ["reject", "delay", "queue"])
        for key in keys {
            let name = key["name"] as? String ?? "?"
            #expect(key["over_admission"] as? Int == 0, "\(name): admitted more than burst + rate × window: \(key["windows"] ?? "")")
            #expect(key["unslotted"] as? Int == 0, "\(name): admitted without a limiter slot")
            #expect((key["allowance_used"] as? Double ?? 0) >= 0.97, "\(name): used \(key["allowance_used"] ?? "") of the allowance")
            #expect(key["failures"] as? Int == 0, "\(name): \(key["failure_log"] ?? "")")
            #expect((key["too_many_requests"] as? Int ?? 0) > 0, "\(name): offered 5× its limit, some must be refused")
        }
        let queue = try #require(keys.first { $0["overflow"] as? String == "queue" })
        #expect((queue["accepted"] as? Int ?? 0) > 100 && queue["jobs_completed"] as? Int == queue["accepted"] as? Int, "every queued job completed")
        let delay = try #require(keys.first { $0["overflow"] as? String == "delay" })
        #expect((delay["latency_ms"] as? [String: Double])?["p90"] ?? 0 > 500, "delay-key requests were held")

        // Kill a replica 3 s into a second run: only requests already on it may fail.
        let second = try BackgroundCommand(loadTest(["--duration", "8"]))
        try waitUntil(timeout: 30) { second.log.contains("[  3s]") }
        kill(try pid("replica-2"), SIGKILL)
        let killedAt = 3.0
        #expect(try second.wait(timeout: 60) == 0, "\(second.log.suffix(2000))")
        for key in try report(second.log) {
            let name = key["name"] as? String ?? "?"
            let failures = key["failure_log"] as? [[String: Any]] ?? []
            let late = failures.filter { ($0["at"] as? Double ?? 0) > killedAt + 0.3 }
            #expect(late.isEmpty, "\(name): requests sent after the kill failed: \(late)")
            #expect(key["over_admission"] as? Int == 0, "\(name)")
            #expect((key["allowance_used"] as? Double ?? 0) >= 0.9, "\(name): the two remaining replicas kept serving")
        }
        let afterKill = try cluster("status").output
        #expect(afterKill.split(separator: "\n").contains { $0.hasPrefix("replica-2") && $0.hasSuffix("down") })
        #expect(afterKill.split(separator: "\n").contains { $0.hasPrefix("lb") && $0.hasSuffix("ready") })

        // down stops exactly what up started.
        let pids = try ["redis", "replica-1", "replica-3", "worker-1", "worker-2", "lb"].map(pid)
        let down = try cluster("down")
        #expect(down.status == 0 && down.output.contains("stopped 6 processes"), "\(down.output)")
        for pid in pids { #expect(Foundation.kill(pid, 0) != 0, "pid \(pid) still running") }
        #expect(!RedisServer.accepts(port: lbPort))
    }
}
