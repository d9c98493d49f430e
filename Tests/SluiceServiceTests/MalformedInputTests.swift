import Foundation
import SluiceTestSupport
import Testing

/// Hostile and broken prediction requests: each gets a clear 4xx problem, never a 5xx or a crash.
/// The table of cases; it runs in process (InProcessPredictionInputTests) and, for bodies too large
/// to read, over HTTP.
@Suite("Malformed prediction input over HTTP", .serialized)
struct MalformedInputTests {
    struct Case: CustomStringConvertible, Sendable {
        var name: String
        var body: String
        var status: Int
        var pointer: String? = nil
        var contentType = "application/json"
        var raw: [UInt8]? = nil
        var description: String { name }
    }

    static let f = #""sepal_length":5.1,"sepal_width":3.5,"petal_length":1.4"#
    static let instance = #"{\#(f),"petal_width":0.2}"#

    static let cases: [Case] = [
        Case(name: "not JSON", body: "hello", status: 400),
        Case(name: "empty body", body: "", status: 400),
        Case(name: "truncated", body: #"{"features":{"sepal_length":5.1"#, status: 400),
        Case(name: "trailing garbage", body: #"{"features":\#(instance)} x"#, status: 400),
        Case(name: "bare NaN literal", body: #"{"features":{\#(f),"petal_width":NaN}}"#, status: 400),
        Case(name: "bare Infinity literal", body: #"{"features":{\#(f),"petal_width":Infinity}}"#, status: 400),
        Case(name: "single quotes", body: #"{'features':{}}"#, status: 400),
        Case(name: "leading zero", body: #"{"features":{\#(f),"petal_width":01}}"#, status: 400),
        Case(name: "invalid UTF-8 in a key", body: "", status: 400, raw: Array(#"{"features":{""#.utf8) + [0xFF] + Array(#"":1}}"#.utf8)),
        Case(name: "invalid escape", body: #"{"features":{"\q":1}}"#, status: 400),
        Case(name: "wrong content type", body: #"{"features":\#(instance)}"#, status: 415, contentType: "text/plain"),
        Case(name: "form content type", body: "sepal_length=5.1", status: 415, contentType: "application/x-www-form-urlencoded"),
        Case(name: "array at top level", body: "[1,2,3]", status: 422, pointer: ""),
        Case(name: "string at top level", body: #""features""#, status: 422, pointer: ""),
        Case(name: "empty object", body: "{}", status: 422, pointer: ""),
        Case(name: "both features and instances", body: #"{"features":\#(instance),"instances":[\#(instance)]}"#, status: 422, pointer: ""),
        Case(name: "unknown top-level field", body: #"{"features":\#(instance),"debug":true}"#, status: 422, pointer: "/debug"),
        Case(name: "missing feature", body: #"{"features":{\#(f)}}"#, status: 422, pointer: "/features/petal_width"),
        Case(name: "unknown feature", body: #"{"features":{\#(f),"petal_width":0.2,"stem":1}}"#, status: 422, pointer: "/features/stem"),
        Case(name: "duplicated feature", body: #"{"features":{\#(f),"petal_width":0.2,"petal_width":9}}"#, status: 422, pointer: "/features/petal_width"),
        Case(name: "duplicated top-level key", body: #"{"features":\#(instance),"features":\#(instance)}"#, status: 422, pointer: "/features"),
        Case(name: "string value", body: #"{"features":{\#(f),"petal_width":"0.2"}}"#, status: 422, pointer: "/features/petal_width"),
        Case(name: "NaN as string", body: #"{"features":{\#(f),"petal_width":"NaN"}}"#, status: 422, pointer: "/features/petal_width"),
        Case(name: "boolean value", body: #"{"features":{\#(f),"petal_width":true}}"#, status: 422, pointer: "/features/petal_width"),
        Case(name: "null value", body: #"{"features":{\#(f),"petal_width":null}}"#, status: 422, pointer: "/features/petal_width"),
        Case(name: "nested object value", body: #"{"features":{\#(f),"petal_width":{"v":1}}}"#, status: 422, pointer: "/features/petal_width"),
        Case(name: "overflowing number (inf)", body: #"{"features":{\#(f),"petal_width":1e400}}"#, status: 422, pointer: "/features/petal_width"),
        Case(name: "absurd magnitude", body: #"{"features":{\#(f),"petal_width":1e9}}"#, status: 422, pointer: "/features/petal_width"),
        Case(name: "absurd negative", body: #"{"features":{\#(f),"petal_width":-1e6}}"#, status: 422, pointer: "/features/petal_width"),
        Case(name: "features not an object", body: #"{"features":[5.1,3.5,1.4,0.2]}"#, status: 422, pointer: "/features"),
        Case(name: "instances not an array", body: #"{"instances":\#(instance)}"#, status: 422, pointer: "/instances"),
        Case(name: "empty batch", body: #"{"instances":[]}"#, status: 422, pointer: "/instances"),
        Case(name: "batch of 101", body: #"{"instances":[\#(Array(repeating: instance, count: 101).joined(separator: ","))]}"#, status: 422, pointer: "/instances"),
        Case(name: "bad instance in a batch", body: #"{"instances":[\#(instance),{\#(f)}]}"#, status: 422, pointer: "/instances/1/petal_width"),
        Case(name: "instance not an object", body: #"{"instances":[\#(instance),7]}"#, status: 422, pointer: "/instances/1"),
        Case(name: "deep nesting", body: String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000), status: 422),
        Case(name: "deep object nesting", body: #"{"features":\#(String(repeating: #"{"a":"#, count: 50))1\#(String(repeating: "}", count: 50))}"#, status: 422),
        Case(name: "body over 64 KiB", body: #"{"features":\#(instance),"pad":""# + String(repeating: "x", count: 70_000) + #""}"#, status: 413),
        Case(name: "megabytes of body", body: String(repeating: " ", count: 3_000_000), status: 413),
    ]

    /// The answer every case expects: its status, as problem+json, pointing at the field when it names one.
    static func expectProblem(_ response: HTTP.Response, for testCase: Case, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(response.status == testCase.status, "\(testCase.name): \(response.status) \(response.text.prefix(300))", sourceLocation: sourceLocation)
        #expect(response.header("Content-Type") == "application/problem+json", "\(testCase.name)", sourceLocation: sourceLocation)
        let problem = response.json
        #expect(problem?["status"] as? Int == testCase.status, "\(testCase.name)", sourceLocation: sourceLocation)
        if let pointer = testCase.pointer {
            let errors = problem?["errors"] as? [[String: Any]] ?? []
            #expect(errors.contains { $0["pointer"] as? String == pointer }, "\(testCase.name): \(errors)", sourceLocation: sourceLocation)
        }
    }

    /// The whole table runs in process (InProcessPredictionInputTests); over a real connection,
    /// the bodies the server must refuse while they are still arriving, and the process's log.
    @Test func oversizedBodiesAreRefusedWhileArrivingAndNothingIs500() async throws {
        let cluster = try await Cluster()
        let (key, _) = try await cluster.createKey(scopes: ["predict"])
        let oversized = Self.cases.filter { $0.status == 413 }
        #expect(oversized.count == 2)
        for testCase in oversized {
            let response = try await HTTP.send(
                "POST", cluster.url + "/v1/predict",
                headers: ["Authorization": "Bearer \(key)", "Content-Type": testCase.contentType], body: Data(testCase.raw ?? Array(testCase.body.utf8)))
            Self.expectProblem(response, for: testCase)
        }
        // The replica survived all of it.
        #expect(try await HTTP.json("POST", cluster.url + "/v1/predict", key: key, Cluster.setosa).status == 200)
        #expect(cluster.replicas[0].log.contains("status=500") == false)
    }
}
