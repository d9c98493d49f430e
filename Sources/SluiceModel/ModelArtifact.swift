import Foundation

/// A trained model as stored, signed and served: plain JSON, so that it can be inspected and diffed.
///
/// Only the exact bytes that were signed are ever loaded (see ``ArtifactSigner``): a replica never
/// decodes an artifact whose HMAC does not verify.
public struct ModelArtifact: Sendable, Codable, Equatable {
    /// Statistics of one feature over the training rows; the serving side standardizes with
    /// `mean`/`std` and refuses values far outside `min`…`max`.
    public struct Feature: Sendable, Codable, Equatable {
        public var name: String
        public var min: Double
        public var max: Double
        public var mean: Double
        public var std: Double
    }

    public struct Metrics: Sendable, Codable, Equatable {
        /// Accuracy on the 20% of the uploaded rows held out from training.
        public var holdoutAccuracy: Double
        public var trainAccuracy: Double
        /// Accuracy on the reference set (the shipped Iris data's holdout split), the yardstick
        /// the quality gate compares candidates on: a model trained on consistently relabelled
        /// data can score well on its own holdout, never on the reference.
        public var referenceAccuracy: Double
        public var trainRows: Int
        public var holdoutRows: Int

        enum CodingKeys: String, CodingKey {
            case holdoutAccuracy = "holdout_accuracy"
            case trainAccuracy = "train_accuracy"
            case referenceAccuracy = "reference_accuracy"
            case trainRows = "train_rows"
            case holdoutRows = "holdout_rows"
        }
    }

    public var version: Int
    public var algorithm: String
    public var features: [Feature]
    public var classes: [String]
    /// One row of coefficients per class, one column per (standardized) feature.
    public var weights: [[Double]]
    public var intercepts: [Double]
    public var metrics: Metrics
    public var trainingDataSHA256: String
    public var createdAt: Date
    /// The id of the key that trained it (`"bootstrap"` for the first model).
    public var trainedBy: String

    enum CodingKeys: String, CodingKey {
        case version, algorithm, features, classes, weights, intercepts, metrics
        case trainingDataSHA256 = "training_data_sha256"
        case createdAt = "created_at"
        case trainedBy = "trained_by"
    }

    /// Class probabilities for one row of features, in ``features`` order.
    public func probabilities(_ row: [Double]) -> [Double] {
        var scores = intercepts
        for (k, coefficients) in weights.enumerated() {
            for (j, feature) in features.enumerated() {
                scores[k] += coefficients[j] * (row[j] - feature.mean) / feature.std
            }
        }
        softmax(&scores)
        return scores
    }

    /// True when the shapes agree and every number is finite: checked after the signature, so a
    /// signed-but-broken artifact (a bug, not an attack) is refused too.
    public var isWellFormed: Bool {
        !classes.isEmpty && !features.isEmpty && weights.count == classes.count && intercepts.count == classes.count
            && weights.allSatisfy { $0.count == features.count && $0.allSatisfy(\.isFinite) }
            && intercepts.allSatisfy(\.isFinite)
            && features.allSatisfy { $0.std > 0 && $0.std.isFinite && $0.mean.isFinite && $0.min <= $0.max }
    }
}

/// Scores to probabilities, in place (one array per prediction, not three).
func softmax(_ scores: inout [Double]) {
    let top = scores.max() ?? 0
    var sum = 0.0
    for index in scores.indices {
        scores[index] = Foundation.exp(scores[index] - top)
        sum += scores[index]
    }
    for index in scores.indices { scores[index] /= sum }
}
