import Foundation
import SluiceTestSupport
import Testing

/// `scripts/nemesis` and `scripts/check-history` in CI: a short seeded fault schedule against the
/// real topology (3 replicas, 2 workers, HAProxy, a Redis Cluster of 3 masters and 3 replicas,
/// replica-3 behind the fault proxy), at half the load on the tests' debug build.
@Suite("scripts/nemesis: a seeded fault schedule against the real topology")
struct NemesisTests {
    @Test(.enabled(if: getuid() == 0, "needs root: replica-3 runs in a network namespace"))
    func aShortSeededScheduleKeepsEveryStatedBound() throws {
        let directory = try Repository.temporaryDirectory("nemesis")
        let seed = 11
        let (status, output) = try runCommand(
            [Repository.path("scripts/nemesis"), "45", "--seed", String(seed), "--load", "0.5"],
            environment: ["SLUICE_NEMESIS_DIR": directory, "SLUICE_BINARY": ServiceProcess.binary])
        #expect(status == 0, "the checker found violations, or the run failed:\n\(output)")
        #expect(output.contains("no violation"))
        // The schedule did inject faults of several kinds, and the load was answered.
        let records = try String(contentsOfFile: "\(directory)/history-\(seed).jsonl", encoding: .utf8)
            .split(separator: "\n").compactMap { try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        let faults = records.filter { $0["type"] as? String == "fault" }
        let kinds = Set(faults.compactMap { $0["kind"] as? String })
        #expect(faults.count >= 3 && kinds.count >= 2, "faults injected: \(faults.map { "\($0["kind"] ?? "?") \($0["target"] ?? "?")" })")
        let requests = records.filter { $0["type"] as? String == "request" }
        let admitted = requests.filter { [200, 202].contains($0["status"] as? Int ?? 0) }
        #expect(requests.count > 1000 && admitted.count > 300, "\(requests.count) requests, \(admitted.count) admitted")
        #expect(records.contains { $0["type"] as? String == "job" }, "queued jobs were polled to their end")
    }
}

/// `scripts/check-history` catches what it is for. The real system cannot be made to break its
/// bounds on purpose, so these histories are written by hand: one violation each.
@Suite("scripts/check-history finds each kind of violation")
struct CheckHistoryTests {
    let start = 1_800_000_000.0

    func check(_ lines: [[String: Any]]) throws -> (status: Int32, output: String) {
        let directory = try Repository.temporaryDirectory("history")
        let path = "\(directory)/history.jsonl"
        let header: [[String: Any]] = [
            ["type": "run", "seed": 3, "seconds": 60, "start": start],
            ["type": "key", "key": "k", "policies": [["name": "default", "rate": 10, "period": 1, "burst": 5]], "overflow": "reject",
             "on_redis_failure": "closed"],
        ]
        let text = try (header + lines).map { String(decoding: try JSONSerialization.data(withJSONObject: $0), as: UTF8.self) }.joined(separator: "\n")
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return try runCommand([Repository.path("scripts/check-history"), path])
    }

    /// `count` admissions of key k, 10 ms apart from `at` seconds into the run.
    func admissions(_ count: Int, at: Double) -> [[String: Any]] {
        (0..<count).map { i in
            let t = start + at + Double(i) * 0.01
            return ["type": "request", "key": "k", "t0": t, "t1": t + 0.005, "status": 200, "slot": String(format: "%.6f", t + 0.002)]
        }
    }

    @Test func overAdmissionOutsideAFaultIsAViolationWithinAWriteLossItIsNot() throws {
        let within = try check(admissions(5, at: 10))
        #expect(within.status == 0 && within.output.contains("no violation"), "\(within.output)")
        let over = try check(admissions(7, at: 10))
        #expect(over.status == 1 && over.output.contains("7 admitted"), "\(over.output)")
        #expect(over.output.contains("scripts/nemesis 60 --seed 3"), "says how to reproduce it")
        // A master killed just before: its last writes may be lost, one burst of slack.
        let kill: [String: Any] = ["type": "fault", "kind": "kill", "target": "redis-1", "role": "master", "start": start + 9.8, "end": start + 15]
        let lost = try check(admissions(7, at: 10) + [kill])
        #expect(lost.status == 0, "\(lost.output)")
    }

    @Test func a5xxOutsideAFaultAMissingRetryAfterAndALostJobAreViolations() throws {
        let failed: [String: Any] = ["type": "request", "key": "k", "t0": start + 30, "t1": start + 30.01, "status": 503, "retry_after": "1"]
        #expect(try check([failed]).output.contains("503 at 30.00 s outside any fault"))
        let refused: [String: Any] = ["type": "request", "key": "k", "t0": start + 30, "t1": start + 30.01, "status": 429]
        #expect(try check([refused]).output.contains("429 at 30.00 s without Retry-After"))
        let queued: [String: Any] = ["type": "request", "key": "k", "t0": start + 20, "t1": start + 20.01, "status": 202, "job": "j1", "slot": "\(start + 21)"]
        let result = try check([queued, ["type": "job", "job": "j1", "status": "not found"]])
        #expect(result.status == 1 && result.output.contains("job j1"), "\(result.output)")
    }
}
