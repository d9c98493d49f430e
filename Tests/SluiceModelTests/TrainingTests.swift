import Foundation
import Testing

@testable import SluiceModel

@Suite("Training data and the trainer")
struct TrainingTests {
    @Test func irisShipsWhole() throws {
        let iris = try IrisDataset.load()
        #expect(iris.rows.count == 150 && iris.features.count == 4 && iris.classes.count == 3)
        #expect((0..<3).allSatisfy { k in iris.labels.filter { $0 == k }.count == 50 })
    }

    @Test func trainingIsDeterministicAndAccurate() throws {
        let iris = try IrisDataset.load()
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        let a = LogisticRegression().train(iris, reference: iris, trainedBy: "test", now: now)
        let b = LogisticRegression().train(iris, reference: iris, trainedBy: "test", now: now)
        #expect(a == b)
        #expect(a.metrics.holdoutAccuracy >= 0.9 && a.metrics.trainAccuracy >= 0.9)
        #expect(a.metrics.trainRows == 120 && a.metrics.holdoutRows == 30)
        #expect(a.isWellFormed)
        let setosa = a.probabilities([5.1, 3.5, 1.4, 0.2])
        #expect(setosa.firstIndex(of: setosa.max()!) == 0 && abs(setosa.reduce(0, +) - 1) < 1e-9)
    }

    @Test func poisonedLabelsScoreBadlyOnTheReference() throws {
        let iris = try IrisDataset.load()
        var generator = SplitMix64(seed: 7)
        let poisoned = TrainingData(features: iris.features, classes: iris.classes, rows: iris.rows, labels: iris.labels.shuffled(using: &generator))
        // Consistently relabelled data fits its own holdout but not the reference.
        let swapped = TrainingData(features: iris.features, classes: iris.classes, rows: iris.rows, labels: iris.labels.map { ($0 + 1) % 3 })
        let shuffledModel = LogisticRegression().train(poisoned, reference: iris, trainedBy: "test")
        let swappedModel = LogisticRegression().train(swapped, reference: iris, trainedBy: "test")
        #expect(shuffledModel.metrics.referenceAccuracy < 0.7)
        #expect(swappedModel.metrics.holdoutAccuracy > 0.9 && swappedModel.metrics.referenceAccuracy < 0.1)
    }

    static let header = "sepal_length,sepal_width,petal_length,petal_width,species\n"

    static func csv(rows: [String]) -> String { header + rows.joined(separator: "\n") }

    static let goodRows = (0..<30).map { i in "5.\(i % 10),3.0,1.\(i % 10),0.2,\(["setosa", "versicolor", "virginica"][i % 3])" }

    @Test(arguments: [
        ("bad header", "a,b,c\n1,2,3", "/header"),
        ("too few rows", csv(rows: Array(goodRows.prefix(5))), "/rows"),
        ("not a number", csv(rows: goodRows + ["x,3.0,1.0,0.2,setosa"]), "/rows/30/sepal_length"),
        ("NaN", csv(rows: goodRows + ["nan,3.0,1.0,0.2,setosa"]), "/rows/30/sepal_length"),
        ("infinity", csv(rows: goodRows + ["1,inf,1.0,0.2,setosa"]), "/rows/30/sepal_width"),
        ("unknown label", csv(rows: goodRows + ["1,3.0,1.0,0.2,rose"]), "/rows/30/species"),
        ("short row", csv(rows: goodRows + ["1,3.0,1.0"]), "/rows/30"),
        ("missing class", csv(rows: (0..<30).map { _ in "5.0,3.0,1.0,0.2,setosa" }), "/rows"),
    ])
    func invalidCSVIsRefusedWithAPointer(name: String, text: String, pointer: String) {
        do {
            _ = try TrainingData.csv(text, schema: .iris)
            Issue.record("\(name) must be refused")
        } catch {
            #expect(error.problems.contains { $0.pointer == pointer }, "\(name): \(error.problems)")
        }
    }

    @Test func jsonRows() throws {
        let rows = (0..<30).map { i in
            #"{"sepal_length": 5.\#(i % 10), "sepal_width": 3, "petal_length": 1.4, "petal_width": 0.2, "species": "\#(["setosa", "versicolor", "virginica"][i % 3])"}"#
        }
        let data = try TrainingData.json(Data(#"{"rows": [\#(rows.joined(separator: ","))]}"#.utf8), schema: .iris)
        #expect(data.rows.count == 30)
        let withBool = rows.dropLast() + [#"{"sepal_length": true, "sepal_width": 3, "petal_length": 1.4, "petal_width": 0.2, "species": "setosa"}"#]
        #expect(throws: DataValidationError.self) {
            try TrainingData.json(Data(#"{"rows": [\#(withBool.joined(separator: ","))]}"#.utf8), schema: .iris)
        }
        #expect(throws: DataValidationError.self) { try TrainingData.json(Data("[1,2]".utf8), schema: .iris) }
    }
}
