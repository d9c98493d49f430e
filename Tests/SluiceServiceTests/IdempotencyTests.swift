import Foundation
import SluiceQueue
import SluiceTestSupport
import Testing

/// `Idempotency-Key` on `POST /v1/predict`: a retried request gets its first answer again — the
/// same job, prediction or refusal — and never queues the same work twice.
@Suite("Idempotency-Key", .serialized)
struct IdempotencyTests {
    static func predict(_ cluster: Cluster, key: String, idempotencyKey: String?, body: String = Cluster.setosa) async throws -> HTTP.Response {
        try await HTTP.json("POST", "\(cluster.url)/v1/predict", key: key, headers: idempotencyKey.map { ["Idempotency-Key": $0] } ?? [:], body)
    }

    @Test func aRepeatedKeyGetsTheSameJobOrPredictionAndNeverASecondJob() async throws {
        let cluster = try await Cluster(workers: 1)
        let (key, _) = try await cluster.createKey(
            scopes: ["predict"], policies: #"[{"name":"default","rate":1,"period":1,"burst":1}]"#, extra: #","overflow":"queue""#)
        let served = try await Self.predict(cluster, key: key, idempotencyKey: #""served-1""#)
        #expect(served.status == 200 && served.header("Idempotent-Replayed") == nil)
        let queued = try await Self.predict(cluster, key: key, idempotencyKey: "queued-1")
        #expect(queued.status == 202)
        let location = try #require(queued.header("Location"))

        let again = try await Self.predict(cluster, key: key, idempotencyKey: "queued-1")
        #expect(again.status == 202 && again.header("Location") == location && again.header("Idempotent-Replayed") == "true", "\(again.text)")
        #expect(again.text == queued.text)
        let servedAgain = try await Self.predict(cluster, key: key, idempotencyKey: "served-1")
        #expect(servedAgain.status == 200 && servedAgain.text == served.text && servedAgain.header("Idempotent-Replayed") == "true")

        // Same key, another request: refused, never served as the first one's answer.
        let other = try await Self.predict(cluster, key: key, idempotencyKey: "queued-1", body: #"{"instances":[\#(Cluster.setosa.dropFirst(12).dropLast())]}"#)
        #expect(other.status == 422 && other.json?["type"] as? String == "/problems/idempotency-key-reused", "\(other.text)")
        for bad in ["", String(repeating: "k", count: 256), "caf\u{e9}"] {
            let refused = try await Self.predict(cluster, key: key, idempotencyKey: bad)
            #expect(refused.status == 400 && refused.json?["type"] as? String == "/problems/invalid-idempotency-key", "\(bad.prefix(10)): \(refused.text)")
        }
        // Scoped to the API key: another key's identical Idempotency-Key is a new request.
        let (stranger, _) = try await cluster.createKey(scopes: ["predict"])
        let theirs = try await Self.predict(cluster, key: stranger, idempotencyKey: "queued-1")
        #expect(theirs.status == 200 && theirs.header("Idempotent-Replayed") == nil)

        _ = try await cluster.jobResult(location, key: key)
        let stats = try await PartitionedJobQueue(client: cluster.redis.client()).stats()["completed"].map(String.init)
        #expect(stats == "1", "one job, however many retries")
    }

    @Test func aRefusalIsRepeatedOnlyUntilItsRetryAfter() async throws {
        let cluster = try await Cluster()
        let (key, _) = try await cluster.createKey(scopes: ["predict"], policies: #"[{"name":"default","rate":1,"period":2,"burst":1}]"#)
        #expect(try await Self.predict(cluster, key: key, idempotencyKey: "first").status == 200)
        let refused = try await Self.predict(cluster, key: key, idempotencyKey: "second")
        #expect(refused.status == 429)
        let repeated = try await Self.predict(cluster, key: key, idempotencyKey: "second")
        #expect(repeated.status == 429 && repeated.header("Idempotent-Replayed") == "true" && repeated.text == refused.text)
        let wait = Int(refused.header("Retry-After") ?? "") ?? 0
        #expect(wait >= 1)
        try await Task.sleep(for: .seconds(Double(wait) + 0.2))
        let fresh = try await Self.predict(cluster, key: key, idempotencyKey: "second")
        #expect(fresh.status == 200 && fresh.header("Idempotent-Replayed") == nil, "after Retry-After the retry is a new attempt: \(fresh.text)")
    }

    @Test func aRepeatWhileTheFirstIsStillHeldIsAConflict() async throws {
        let cluster = try await Cluster()
        let (key, _) = try await cluster.createKey(
            scopes: ["predict"], policies: #"[{"name":"default","rate":1,"period":1,"burst":1}]"#, extra: #","overflow":"delay","max_delay":5"#)
        #expect(try await Self.predict(cluster, key: key, idempotencyKey: nil).status == 200)
        async let held = Self.predict(cluster, key: key, idempotencyKey: "held")
        try await Task.sleep(for: .milliseconds(300))
        let conflict = try await Self.predict(cluster, key: key, idempotencyKey: "held")
        #expect(conflict.status == 409 && conflict.json?["type"] as? String == "/problems/idempotency-key-in-progress", "\(conflict.text)")
        #expect(conflict.header("Retry-After") == "1")
        let first = try await held
        #expect(first.status == 200 && first.header("Sluice-Delay") != nil)
        let replay = try await Self.predict(cluster, key: key, idempotencyKey: "held")
        #expect(replay.status == 200 && replay.text == first.text && replay.header("Idempotent-Replayed") == "true")
    }
}
