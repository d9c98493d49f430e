import Foundation
import SluiceTestSupport
import Testing

/// A worker's Prometheus series stay bounded: per-key queue depth exists only while a key has
/// jobs pending.
@Suite("Worker metrics", .serialized)
struct WorkerMetricsTests {
    @Test func perKeyDepthDisappearsOnceTheKeysQueueIsEmpty() async throws {
        let cluster = try await Cluster(workers: 1)
        let (key, id) = try await cluster.createKey(
            scopes: ["predict"], policies: #"[{"name":"default","rate":2,"period":1,"burst":1}]"#, extra: #","overflow":"queue""#)
        var locations: [String] = []
        for _ in 0..<6 {
            let response = try await HTTP.json("POST", "\(cluster.url)/v1/predict", key: key, Cluster.setosa)
            if let location = response.header("Location") { locations.append(location) }
        }
        #expect(locations.count == 5)
        let series = "sluice_queue_key_depth{key_id=\"\(id)\"}"
        func exported() async throws -> Bool {
            try await HTTP.send("GET", "\(cluster.workers[0].baseURL)/metrics").text.contains(series)
        }
        var seenWhilePending = false
        for _ in 0..<20 where !seenWhilePending {
            seenWhilePending = try await exported()
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(seenWhilePending, "the key's depth is exported while its jobs wait")
        for location in locations { _ = try await cluster.jobResult(location, key: key) }
        try await Task.sleep(for: .milliseconds(1500))
        #expect(try await !exported(), "no series left behind for a key with nothing pending")
    }
}
