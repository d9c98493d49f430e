import Foundation

/// Deterministic multinomial logistic regression: standardized features, softmax, full-batch
/// gradient descent from zero weights with L2 regularisation, a seeded shuffle for the 80/20
/// split. The same data always gives the same artifact (apart from its time stamps).
public struct LogisticRegression: Sendable {
    public var epochs = 500
    public var learningRate = 0.5
    public var l2 = 1e-3
    public var holdoutFraction = 0.2
    public var seed: UInt64 = 0x51_71_CE

    public init() {}

    /// Trains on `data` and evaluates on its holdout and on `reference` (if given).
    public func train(_ data: TrainingData, reference: TrainingData? = nil, trainedBy: String, now: Date = Date()) -> ModelArtifact {
        let (trainIndices, holdoutIndices) = split(count: data.rows.count)
        let trainRows = trainIndices.map { data.rows[$0] }
        let trainLabels = trainIndices.map { data.labels[$0] }
        let features = data.features.enumerated().map { j, name in
            let column = trainRows.map { $0[j] }
            let mean = column.reduce(0, +) / Double(column.count)
            let variance = column.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(column.count)
            return ModelArtifact.Feature(
                name: name, min: column.min()!, max: column.max()!, mean: mean, std: max(variance.squareRoot(), 1e-9))
        }
        let x = trainRows.map { row in row.enumerated().map { j, value in (value - features[j].mean) / features[j].std } }
        let classCount = data.classes.count
        var weights = Array(repeating: Array(repeating: 0.0, count: features.count), count: classCount)
        var intercepts = Array(repeating: 0.0, count: classCount)
        let n = Double(x.count)
        for _ in 0..<epochs {
            var gradW = Array(repeating: Array(repeating: 0.0, count: features.count), count: classCount)
            var gradB = Array(repeating: 0.0, count: classCount)
            for (row, label) in zip(x, trainLabels) {
                var scores = intercepts
                for k in 0..<classCount {
                    for j in 0..<row.count { scores[k] += weights[k][j] * row[j] }
                }
                softmax(&scores)
                let p = scores
                for k in 0..<classCount {
                    let error = p[k] - (k == label ? 1 : 0)
                    gradB[k] += error
                    for j in 0..<row.count { gradW[k][j] += error * row[j] }
                }
            }
            for k in 0..<classCount {
                intercepts[k] -= learningRate * gradB[k] / n
                for j in 0..<features.count {
                    weights[k][j] -= learningRate * (gradW[k][j] / n + l2 * weights[k][j])
                }
            }
        }
        var artifact = ModelArtifact(
            version: 0, algorithm: "multinomial-logistic-regression", features: features, classes: data.classes,
            weights: weights, intercepts: intercepts,
            metrics: .init(holdoutAccuracy: 0, trainAccuracy: 0, referenceAccuracy: 0, trainRows: trainIndices.count, holdoutRows: holdoutIndices.count),
            trainingDataSHA256: data.sha256, createdAt: now, trainedBy: trainedBy
        )
        artifact.metrics.trainAccuracy = Self.accuracy(of: artifact, rows: trainRows, labels: trainLabels)
        artifact.metrics.holdoutAccuracy = Self.accuracy(
            of: artifact, rows: holdoutIndices.map { data.rows[$0] }, labels: holdoutIndices.map { data.labels[$0] })
        if let reference {
            let (_, referenceHoldout) = split(count: reference.rows.count)
            artifact.metrics.referenceAccuracy = Self.accuracy(
                of: artifact, rows: referenceHoldout.map { reference.rows[$0] }, labels: referenceHoldout.map { reference.labels[$0] })
        } else {
            artifact.metrics.referenceAccuracy = artifact.metrics.holdoutAccuracy
        }
        return artifact
    }

    /// The seeded 80/20 split (indices into the rows).
    func split(count: Int) -> (train: [Int], holdout: [Int]) {
        var generator = SplitMix64(seed: seed)
        let shuffled = Array(0..<count).shuffled(using: &generator)
        let holdout = max(1, Int((Double(count) * holdoutFraction).rounded()))
        return (Array(shuffled.dropFirst(holdout)), Array(shuffled.prefix(holdout)))
    }

    public static func accuracy(of model: ModelArtifact, rows: [[Double]], labels: [Int]) -> Double {
        guard !rows.isEmpty else { return 0 }
        let correct = zip(rows, labels).filter { row, label in
            let p = model.probabilities(row)
            return p.firstIndex(of: p.max()!) == label
        }.count
        return Double(correct) / Double(rows.count)
    }
}

/// SplitMix64: a tiny seedable generator for the reproducible split (not for anything secret).
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
