import Foundation
import SluiceTestSupport
import Testing

/// Hostile and broken prediction requests: each gets a clear 4xx problem, never a 5xx or a crash.
/// The table of cases (``PredictionCase``) runs in process (InProcessPredictionInputTests); over
/// HTTP, the bodies too large to read.
@Suite("Malformed prediction input over HTTP", .serialized)
struct MalformedInputTests {
    /// The whole table runs in process (InProcessPredictionInputTests); over a real connection,
    /// the bodies the server must refuse while they are still arriving, and the process's log.
    @Test func oversizedBodiesAreRefusedWhileArrivingAndNothingIs500() async throws {
        let cluster = try await Cluster()
        let (key, _) = try await cluster.createKey(scopes: ["predict"])
        let oversized = PredictionCase.all.filter { $0.status == 413 }
        #expect(oversized.count == 2)
        for testCase in oversized {
            let response = try await HTTP.send(
                "POST", cluster.url + "/v1/predict",
                headers: ["Authorization": "Bearer \(key)", "Content-Type": testCase.contentType], body: Data(testCase.raw ?? Array(testCase.body.utf8)))
            #expect(testCase.mismatches(response).isEmpty, "\(testCase.mismatches(response))")
        }
        // The replica survived all of it.
        #expect(try await HTTP.json("POST", cluster.url + "/v1/predict", key: key, Cluster.setosa).status == 200)
        #expect(cluster.replicas[0].log.contains("status=500") == false)
    }
}
