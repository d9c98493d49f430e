import Foundation
import SluiceCore
import SluiceModel
import SluiceTestSupport
import Testing

/// A key's `output` (model-extraction limits): full probabilities, rounded ones, or the label
/// alone; for single predictions, batches, held requests and queued jobs alike.
@Suite("Prediction output per key", .serialized)
struct PredictionOutputTests {
    static let batch = #"{"instances":[{"sepal_length":5.1,"sepal_width":3.5,"petal_length":1.4,"petal_width":0.2},"#
        + #"{"sepal_length":6.7,"sepal_width":3.0,"petal_length":5.2,"petal_width":2.3}]}"#

    static func predictions(_ response: HTTP.Response) throws -> [[String: Any]] {
        try #require(response.json?["predictions"] as? [[String: Any]], "\(response.status) \(response.text)")
    }

    /// Every probability has at most `decimals` decimals.
    static func hasAtMostDecimals(_ prediction: [String: Any], _ decimals: Int) -> Bool {
        guard let probabilities = prediction["probabilities"] as? [String: Double], probabilities.count == 3 else { return false }
        return probabilities.values.allSatisfy { value in
            let scaled = value * pow(10, Double(decimals))
            return abs(scaled - scaled.rounded()) < 1e-6
        }
    }

    @Test func eachKeyGetsItsShapeNowHeldAndQueued() async throws {
        let cluster = try await Cluster(workers: 1)
        let full = try await cluster.createKey(scopes: ["predict"]).key
        let rounded = try await cluster.createKey(scopes: ["predict"], extra: #","output":"rounded""#).key
        let label = try await cluster.createKey(scopes: ["predict"], extra: #","output":"label""#).key

        let fullAnswer = try Self.predictions(try await HTTP.json("POST", "\(cluster.url)/v1/predict", key: full, Self.batch))
        #expect(fullAnswer.count == 2 && fullAnswer.allSatisfy { $0["probabilities"] != nil })
        #expect(!fullAnswer.allSatisfy { Self.hasAtMostDecimals($0, 2) }, "the default keeps six decimals")
        let roundedAnswer = try Self.predictions(try await HTTP.json("POST", "\(cluster.url)/v1/predict", key: rounded, Self.batch))
        #expect(roundedAnswer.count == 2 && roundedAnswer.allSatisfy { Self.hasAtMostDecimals($0, 2) }, "\(roundedAnswer)")
        let labelAnswer = try Self.predictions(try await HTTP.json("POST", "\(cluster.url)/v1/predict", key: label, Self.batch))
        #expect(labelAnswer.map { $0["label"] as? String } == ["setosa", "virginica"])
        #expect(labelAnswer.allSatisfy { $0.keys.sorted() == ["label"] }, "\(labelAnswer)")

        // Held (delay) and queued (queue) requests of a label-only key get the same shape.
        let policy = #"[{"name":"default","rate":2,"period":1,"burst":2}]"#
        let held = try await cluster.createKey(scopes: ["predict"], policies: policy, extra: #","overflow":"delay","output":"label""#).key
        _ = try await HTTP.json("POST", "\(cluster.url)/v1/predict", key: held, Self.batch)
        let heldAnswer = try await HTTP.json("POST", "\(cluster.url)/v1/predict", key: held, Self.batch)
        #expect(heldAnswer.header("Sluice-Delay") != nil)
        #expect(try Self.predictions(heldAnswer).allSatisfy { $0.keys.sorted() == ["label"] })
        let queued = try await cluster.createKey(scopes: ["predict"], policies: policy, extra: #","overflow":"queue","output":"rounded""#).key
        _ = try await HTTP.json("POST", "\(cluster.url)/v1/predict", key: queued, Self.batch)
        let accepted = try await HTTP.json("POST", "\(cluster.url)/v1/predict", key: queued, Self.batch)
        #expect(accepted.status == 202)
        let job = try await cluster.jobResult(try #require(accepted.header("Location")), key: queued)
        let jobPredictions = try #require((job["result"] as? [String: Any])?["predictions"] as? [[String: Any]], "\(job)")
        #expect(jobPredictions.count == 2 && jobPredictions.allSatisfy { Self.hasAtMostDecimals($0, 2) }, "\(jobPredictions)")

        // The key record shows its output; an unknown one is refused.
        let shown = try await HTTP.send("GET", "\(cluster.url)/v1/keys", headers: ["Authorization": "Bearer \(cluster.adminKey)"])
        let outputs = Set((shown.json?["keys"] as? [[String: Any]] ?? []).compactMap { $0["output"] as? String })
        #expect(outputs == ["probabilities", "rounded", "label"])
        let refused = try await HTTP.json(
            "POST", "\(cluster.url)/v1/keys", key: cluster.adminKey, #"{"name":"x","scopes":["predict"],"output":"everything"}"#)
        #expect(refused.status == 422)
        #expect((refused.json?["errors"] as? [[String: Any]])?.first?["pointer"] as? String == "/output")
    }

    @Test func queuedJobsCarryTheirOutputAndOldJobsStillRun() {
        let job = PredictionJob(rows: [[5.1, 3.5, 1.4, 0.2]], output: .label)
        #expect(PredictionJob.decode(job.encoded(), width: 4) == job)
        // A job queued before keys had an output: a bare array of rows, full probabilities.
        #expect(PredictionJob.decode("[[5.1,3.5,1.4,0.2]]", width: 4) == PredictionJob(rows: [[5.1, 3.5, 1.4, 0.2]], output: .probabilities))
        #expect(PredictionJob.decode(#"{"rows":[[1,2,3]],"output":"label"}"#, width: 4) == nil)
        #expect(PredictionJob.decode(#"{"rows":[],"output":"label"}"#, width: 4) == nil)
    }
}
