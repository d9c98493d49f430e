import Foundation

/// Hostile and broken prediction requests, each with the clear 4xx problem it must get (never a
/// 5xx or a crash): run in process and, for bodies too large to read, over HTTP.
public struct PredictionCase: CustomStringConvertible, Sendable {
    public var name: String
    public var body: String
    public var status: Int
    public var pointer: String? = nil
    public var contentType = "application/json"
    public var raw: [UInt8]? = nil
    public var description: String { name }

    static let f = #""sepal_length":5.1,"sepal_width":3.5,"petal_length":1.4"#
    static let instance = #"{\#(f),"petal_width":0.2}"#

    /// Every case: its body, and the status (and JSON Pointer) it must get.
    public static let all: [PredictionCase] = [
        PredictionCase(name: "not JSON", body: "hello", status: 400),
        PredictionCase(name: "empty body", body: "", status: 400),
        PredictionCase(name: "truncated", body: #"{"features":{"sepal_length":5.1"#, status: 400),
        PredictionCase(name: "trailing garbage", body: #"{"features":\#(instance)} x"#, status: 400),
        PredictionCase(name: "bare NaN literal", body: #"{"features":{\#(f),"petal_width":NaN}}"#, status: 400),
        PredictionCase(name: "bare Infinity literal", body: #"{"features":{\#(f),"petal_width":Infinity}}"#, status: 400),
        PredictionCase(name: "single quotes", body: #"{'features':{}}"#, status: 400),
        PredictionCase(name: "leading zero", body: #"{"features":{\#(f),"petal_width":01}}"#, status: 400),
        PredictionCase(name: "invalid UTF-8 in a key", body: "", status: 400, raw: Array(#"{"features":{""#.utf8) + [0xFF] + Array(#"":1}}"#.utf8)),
        PredictionCase(name: "invalid escape", body: #"{"features":{"\q":1}}"#, status: 400),
        PredictionCase(name: "wrong content type", body: #"{"features":\#(instance)}"#, status: 415, contentType: "text/plain"),
        PredictionCase(name: "form content type", body: "sepal_length=5.1", status: 415, contentType: "application/x-www-form-urlencoded"),
        PredictionCase(name: "array at top level", body: "[1,2,3]", status: 422, pointer: ""),
        PredictionCase(name: "string at top level", body: #""features""#, status: 422, pointer: ""),
        PredictionCase(name: "empty object", body: "{}", status: 422, pointer: ""),
        PredictionCase(name: "both features and instances", body: #"{"features":\#(instance),"instances":[\#(instance)]}"#, status: 422, pointer: ""),
        PredictionCase(name: "unknown top-level field", body: #"{"features":\#(instance),"debug":true}"#, status: 422, pointer: "/debug"),
        PredictionCase(name: "missing feature", body: #"{"features":{\#(f)}}"#, status: 422, pointer: "/features/petal_width"),
        PredictionCase(name: "unknown feature", body: #"{"features":{\#(f),"petal_width":0.2,"stem":1}}"#, status: 422, pointer: "/features/stem"),
        PredictionCase(name: "duplicated feature", body: #"{"features":{\#(f),"petal_width":0.2,"petal_width":9}}"#, status: 422, pointer: "/features/petal_width"),
        PredictionCase(name: "duplicated top-level key", body: #"{"features":\#(instance),"features":\#(instance)}"#, status: 422, pointer: "/features"),
        PredictionCase(name: "string value", body: #"{"features":{\#(f),"petal_width":"0.2"}}"#, status: 422, pointer: "/features/petal_width"),
        PredictionCase(name: "NaN as string", body: #"{"features":{\#(f),"petal_width":"NaN"}}"#, status: 422, pointer: "/features/petal_width"),
        PredictionCase(name: "boolean value", body: #"{"features":{\#(f),"petal_width":true}}"#, status: 422, pointer: "/features/petal_width"),
        PredictionCase(name: "null value", body: #"{"features":{\#(f),"petal_width":null}}"#, status: 422, pointer: "/features/petal_width"),
        PredictionCase(name: "nested object value", body: #"{"features":{\#(f),"petal_width":{"v":1}}}"#, status: 422, pointer: "/features/petal_width"),
        PredictionCase(name: "overflowing number (inf)", body: #"{"features":{\#(f),"petal_width":1e400}}"#, status: 422, pointer: "/features/petal_width"),
        PredictionCase(name: "absurd magnitude", body: #"{"features":{\#(f),"petal_width":1e9}}"#, status: 422, pointer: "/features/petal_width"),
        PredictionCase(name: "absurd negative", body: #"{"features":{\#(f),"petal_width":-1e6}}"#, status: 422, pointer: "/features/petal_width"),
        PredictionCase(name: "features not an object", body: #"{"features":[5.1,3.5,1.4,0.2]}"#, status: 422, pointer: "/features"),
        PredictionCase(name: "instances not an array", body: #"{"instances":\#(instance)}"#, status: 422, pointer: "/instances"),
        PredictionCase(name: "empty batch", body: #"{"instances":[]}"#, status: 422, pointer: "/instances"),
        PredictionCase(name: "batch of 101", body: #"{"instances":[\#(Array(repeating: instance, count: 101).joined(separator: ","))]}"#, status: 422, pointer: "/instances"),
        PredictionCase(name: "bad instance in a batch", body: #"{"instances":[\#(instance),{\#(f)}]}"#, status: 422, pointer: "/instances/1/petal_width"),
        PredictionCase(name: "instance not an object", body: #"{"instances":[\#(instance),7]}"#, status: 422, pointer: "/instances/1"),
        PredictionCase(name: "deep nesting", body: String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000), status: 422),
        PredictionCase(name: "deep object nesting", body: #"{"features":\#(String(repeating: #"{"a":"#, count: 50))1\#(String(repeating: "}", count: 50))}"#, status: 422),
        PredictionCase(name: "body over 64 KiB", body: #"{"features":\#(instance),"pad":""# + String(repeating: "x", count: 70_000) + #""}"#, status: 413),
        PredictionCase(name: "megabytes of body", body: String(repeating: " ", count: 3_000_000), status: 413),
    ]

    /// What is wrong with `response` as this case's answer (its status, as problem+json, pointing
    /// at the field when it names one); empty when nothing is.
    public func mismatches(_ response: HTTP.Response) -> [String] {
        var wrong: [String] = []
        if response.status != status { wrong.append("\(name): \(response.status) \(response.text.prefix(300))") }
        if response.header("Content-Type") != "application/problem+json" { wrong.append("\(name): not problem+json") }
        let problem = response.json
        if problem?["status"] as? Int != status { wrong.append("\(name): the body's status") }
        if let pointer {
            let errors = problem?["errors"] as? [[String: Any]] ?? []
            if !errors.contains(where: { $0["pointer"] as? String == pointer }) { wrong.append("\(name): no error at \(pointer): \(errors)") }
        }
        return wrong
    }
}
