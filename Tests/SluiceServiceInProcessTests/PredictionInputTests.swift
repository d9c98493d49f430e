import Foundation
import SluiceTestSupport
import Testing

/// Hostile and broken prediction bodies, in process: each gets a clear 4xx problem, never a 5xx.
/// The table is ``PredictionCase``; over HTTP (MalformedInputTests) only what the connection adds.
@Suite("In-process: malformed prediction input", .serialized)
struct InProcessPredictionInputTests {
    @Test func everyMalformedInputGetsItsStatus() async throws {
        try await InProcessReplica.run { replica in
            let (key, _) = try await replica.createKey(scopes: ["predict"])
            #expect(PredictionCase.all.count >= 30)
            for testCase in PredictionCase.all {
                let response = try await replica.send(
                    "POST", "/v1/predict",
                    headers: ["Authorization": "Bearer \(key)", "Content-Type": testCase.contentType],
                    body: Data(testCase.raw ?? Array(testCase.body.utf8)))
                #expect(testCase.mismatches(response).isEmpty, "\(testCase.mismatches(response))")
            }
            // The replica survived all of it, and answered none of it with a 5xx.
            #expect(try await replica.json("POST", "/v1/predict", key: key, Cluster.setosa).status == 200)
            let metrics = try await replica.createKey(scopes: ["metrics"]).key
            let exposition = try await replica.send("GET", "/metrics", headers: ["Authorization": "Bearer \(metrics)"]).text
            #expect(exposition.contains("sluice_http_requests_total"))
            #expect(exposition.contains(#"route="/v1/predict",status="4"#))
            #expect(!exposition.contains(#"route="/v1/predict",status="5"#), "no 5xx counted")
        }
    }
}
