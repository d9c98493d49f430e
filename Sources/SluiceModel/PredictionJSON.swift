import Foundation
import SluiceCore

extension ModelArtifact {
    /// `{"model_version": 1, "predictions": [{"label": …, "probabilities": {…}}]}` for rows of
    /// features in ``features`` order: the body of `POST /v1/predict` and of a finished job.
    /// `output` says how much each prediction shows: probabilities to six decimals, to two, or
    /// the label alone.
    ///
    /// Written directly rather than through `JSONEncoder`: this is the hottest response. The class
    /// names are validated training labels, escaped here all the same.
    public func predictionJSON(for instances: [[Double]], output: PredictionOutput = .probabilities) -> String {
        let scale = output == .rounded ? 1e2 : 1e6
        // One allocation for the whole body: ~40 bytes a class and prediction at most.
        var json = ""
        json.reserveCapacity(48 + instances.count * (24 + classes.count * 40))
        json += "{\"model_version\":"
        json += String(version)
        json += ",\"predictions\":["
        for (index, row) in instances.enumerated() {
            let p = probabilities(row)
            let best = p.indices.max { p[$0] < p[$1] }!
            if index > 0 { json += "," }
            json += "{\"label\":"
            JSONText.appendQuoted(classes[best], to: &json)
            if output != .label {
                json += ",\"probabilities\":{"
                for (k, name) in classes.enumerated() {
                    if k > 0 { json += "," }
                    JSONText.appendQuoted(name, to: &json)
                    json += ":"
                    json += String((p[k] * scale).rounded() / scale)
                }
                json += "}"
            }
            json += "}"
        }
        json += "]}"
        return json
    }
}

/// The body ``ModelArtifact/predictionJSON(for:output:)`` writes, read back: how a finished job's
/// result is decoded by the replica that shows it, so that its response is encoded as a whole.
public struct PredictionResult: Codable, Sendable, Equatable {
    public struct Prediction: Codable, Sendable, Equatable {
        public var label: String
        public var probabilities: [String: Double]?
    }

    public var model_version: Int
    public var predictions: [Prediction]

    /// The result a worker stored, or `nil` when it is not one.
    public init?(json: String) {
        guard let result = try? JSONDecoder().decode(Self.self, from: Data(json.utf8)) else { return nil }
        self = result
    }
}
