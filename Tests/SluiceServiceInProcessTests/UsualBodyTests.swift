import SluiceModel
import Testing

@testable import SluiceService

/// The one-pass reading of the usual prediction body decides nothing the full parse would decide
/// differently: on valid, odd and broken bodies alike, ``PredictionInput/parse(_:model:)``
/// (usual body first) answers exactly what ``PredictionInput/parseInFull(_:model:)`` answers.
@Suite("The usual prediction body, read in one pass")
struct UsualBodyTests {
    static let model = LogisticRegression().train(try! IrisDataset.load(), trainedBy: "test")

    /// What a parse answered: the rows to the bit, or the problem as the client would read it.
    static func outcome(_ parse: () throws(Problem) -> PredictionInput) -> String {
        do {
            return "rows \(try parse().instances.map { $0.map(\.bitPattern) })"
        } catch {
            return "\(error.status.code) \(error.detail) \(error.errors)"
        }
    }

    /// Bodies built from the usual one by random changes of whitespace, order, names, values
    /// and structure; each parsed both ways.
    @Test func parsesEveryBodyAsTheFullParseDoes() {
        var draws = SeededDraws(state: 42)
        func next(_ bound: Int) -> Int { draws.below(bound) }
        func pick(_ choices: [String]) -> String { draws.pick(choices) }
        let names = Self.model.features.map(\.name)
        let values = [
            "5.1", "3.5", "1.4", "0.2", "-0", "0", "6", "1e0", "1E+1", "2.5e-1", "01", "1.", ".5", "-", "+1", "1e400", "-1e400", "79.2", "-79",
            "5.10000000000000000001", "true", "null", "\"5.1\"", "[]", "{}", "5.1x", "NaN",
        ]
        var usual = 0
        for _ in 0..<20_000 {
            func space() -> String { next(3) == 0 ? pick([" ", "\n", "\t ", "\r\n", "\u{0B}"]) : "" }
            var members = names.shuffled(using: &draws).map { name in
                let key = next(25) == 0 ? pick(["sepal_lenght", #"sepal\u005flength"#, "", "Sepal_length", #"a\"b"#]) : name
                return "\(space())\"\(key)\"\(space()):\(space())\(next(6) == 0 ? pick(values) : pick(["5.1", "3.5", "1.4", "0.2", "4.4"]))\(space())"
            }
            if next(20) == 0 { members.removeLast() }
            if next(20) == 0, let first = members.first { members.append(first) }
            let inner = "{" + members.joined(separator: ",") + (next(40) == 0 ? "," : "") + "}"
            let outer = next(30) == 0 ? pick(["instances", "Features", "feature"]) : "features"
            var body = "\(space()){\(space())\"\(outer)\"\(space()):\(space())\(inner)\(space())}\(space())"
            switch next(40) {
            case 0: body = "{\"features\":\(inner),\"x\":1}"
            case 1: body = "{\"instances\":[\(inner)]}"
            case 2: body = String(body.prefix(next(max(body.count, 1))))
            case 3: body += pick(["x", "}", "{}", ","])
            case 4: body = "\u{FEFF}" + body
            default: break
            }
            let bytes = Array(body.utf8)
            if PredictionInput.usualBody(bytes, model: Self.model) != nil { usual += 1 }
            let both = Self.outcome { () throws(Problem) in try PredictionInput.parse(bytes, model: Self.model) }
            let full = Self.outcome { () throws(Problem) in try PredictionInput.parseInFull(bytes, model: Self.model) }
            #expect(both == full, "\(body)")
        }
        #expect(usual > 1_000 && usual < 19_000, "both readings exercised: \(usual) of 20000 read in one pass")
    }
}
