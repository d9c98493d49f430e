import Foundation
import SluiceTestSupport
import Testing
import Yams

/// Live responses of a real replica, checked against `openapi.yaml`: every status is documented
/// for its operation, the content type matches, required headers are present, and JSON bodies
/// satisfy their schemas.
@Suite("openapi.yaml against live responses", .serialized)
struct OpenAPIContractTests {
    let spec: [String: Any]

    init() throws {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../openapi.yaml").path
        spec = try #require(try Yams.load(yaml: String(contentsOfFile: path, encoding: .utf8)) as? [String: Any])
    }

    @Test func liveResponsesMatchTheContract() async throws {
        let cluster = try await Cluster()
        let admin = ["Authorization": "Bearer \(cluster.adminKey)", "Content-Type": "application/json"]
        let predict = try await cluster.createKey(scopes: ["predict"], policies: #"[{"name":"default","rate":1,"period":60,"burst":2}]"#)
        let trainer = try await cluster.createKey(scopes: ["train"])
        let metrics = try await cluster.createKey(scopes: ["metrics"])
        let bearer = { (key: String) in ["Authorization": "Bearer \(key)", "Content-Type": "application/json"] }
        let csv = try Cluster.irisCSV()
        let queued = try await cluster.createKey(
            scopes: ["predict"], policies: #"[{"name":"default","rate":2,"period":1,"burst":1}]"#, extra: #","overflow":"queue""#)

        let exchanges: [(method: String, template: String, path: String, headers: [String: String], body: String)] = [
            ("GET", "/healthz", "/healthz", [:], ""),
            ("GET", "/readyz", "/readyz", [:], ""),
            ("POST", "/v1/predict", "/v1/predict", bearer(predict.key), Cluster.setosa),
            ("POST", "/v1/predict", "/v1/predict", bearer(predict.key), #"{"features":{}}"#),
            ("POST", "/v1/predict", "/v1/predict", bearer(predict.key), Cluster.setosa),
            ("POST", "/v1/predict", "/v1/predict", [:], Cluster.setosa),
            ("POST", "/v1/predict", "/v1/predict", bearer(trainer.key), Cluster.setosa),
            ("POST", "/v1/keys", "/v1/keys", admin, #"{"name":"doc","scopes":["predict"],"quota_per_day":10}"#),
            ("POST", "/v1/keys", "/v1/keys", admin, #"{"name":"doc","scopes":[]}"#),
            ("POST", "/v1/keys", "/v1/keys", admin, "{"),
            ("GET", "/v1/keys", "/v1/keys", admin, ""),
            ("GET", "/v1/keys/{id}", "/v1/keys/\(metrics.id)", admin, ""),
            ("GET", "/v1/keys/{id}", "/v1/keys/nosuchkey", admin, ""),
            ("POST", "/v1/keys/{id}/rotate", "/v1/keys/\(metrics.id)/rotate", admin, #"{"grace_period": 60}"#),
            ("DELETE", "/v1/keys/{id}", "/v1/keys/\(predict.id)", admin, ""),
            ("POST", "/v1/models", "/v1/models", ["Authorization": "Bearer \(trainer.key)", "Content-Type": "text/csv"], csv),
            ("POST", "/v1/models", "/v1/models", ["Authorization": "Bearer \(trainer.key)", "Content-Type": "text/csv"], "a,b\n1,2"),
            ("GET", "/v1/models", "/v1/models", bearer(trainer.key), ""),
            ("GET", "/v1/models/{version}", "/v1/models/1", bearer(trainer.key), ""),
            ("GET", "/v1/models/{version}", "/v1/models/99", bearer(trainer.key), ""),
            ("POST", "/v1/models/{version}/activate", "/v1/models/1/activate", admin, ""),
            ("POST", "/v1/models/resign", "/v1/models/resign", admin, ""),
            ("POST", "/v1/models/resign", "/v1/models/resign", bearer(trainer.key), ""),
            ("GET", "/metrics", "/metrics", bearer(cluster.adminKey), ""),
            ("POST", "/v1/predict", "/v1/predict", bearer(queued.key), Cluster.setosa),
            ("POST", "/v1/predict", "/v1/predict", bearer(queued.key), Cluster.setosa),
            ("POST", "/v1/predict", "/v1/predict", bearer(queued.key).merging(["Prefer": "wait=5"]) { $1 }, Cluster.setosa),
            ("GET", "/v1/jobs/{id}", "/v1/jobs/\(String(repeating: "0", count: 32))", bearer(queued.key), ""),
        ]
        var statuses = Set<Int>()
        var responses: [HTTP.Response] = []
        for exchange in exchanges {
            let response = try await HTTP.send(
                exchange.method, cluster.url + exchange.path, headers: exchange.headers, body: exchange.body.isEmpty ? nil : Data(exchange.body.utf8))
            statuses.insert(response.status)
            responses.append(response)
            check(response, method: exchange.method, template: exchange.template)
        }
        // A queued job, while pending.
        let accepted = try #require(responses.last { $0.status == 202 })
        let job = try await HTTP.send("GET", cluster.url + accepted.header("Location")!, headers: bearer(queued.key))
        #expect(job.status == 202)
        check(job, method: "GET", template: "/v1/jobs/{id}")
        // The metrics key was rotated with a grace period: its old secret still reads metrics.
        let metricsResponse = try await HTTP.send("GET", cluster.url + "/metrics", headers: bearer(metrics.key))
        check(metricsResponse, method: "GET", template: "/metrics")
        #expect(metricsResponse.status == 200)
        #expect(statuses.isSuperset(of: [200, 201, 202, 204, 400, 401, 403, 404, 422, 429]), "\(statuses.sorted())")
    }

    private func check(_ response: HTTP.Response, method: String, template: String) {
        let context = "\(method) \(template) → \(response.status)"
        guard let paths = spec["paths"] as? [String: Any], let item = paths[template] as? [String: Any],
            let operation = item[method.lowercased()] as? [String: Any], let responses = operation["responses"] as? [String: Any]
        else {
            Issue.record("\(method) \(template) is not documented")
            return
        }
        guard let documented = responses[String(response.status)].map(resolve) as? [String: Any] else {
            Issue.record("\(context): status not documented")
            return
        }
        for (name, header) in (resolve(documented["headers"] ?? [:]) as? [String: Any] ?? [:])
        where (resolve(header) as? [String: Any])?["required"] as? Bool == true {
            #expect(response.header(name) != nil, "\(context): header \(name) documented as required but missing")
        }
        guard let content = documented["content"] as? [String: Any] else {
            #expect(response.body.isEmpty, "\(context): body not documented")
            return
        }
        let mediaType = response.header("Content-Type")?.split(separator: ";").first.map(String.init) ?? ""
        guard let media = content[mediaType] as? [String: Any] else {
            Issue.record("\(context): content type \(mediaType) not documented (\(content.keys.sorted()))")
            return
        }
        guard mediaType.hasSuffix("json"), let schema = media["schema"] else { return }
        let body = try? JSONSerialization.jsonObject(with: response.body, options: [.fragmentsAllowed])
        for problem in validate(body as Any, against: schema, at: "") {
            Issue.record("\(context): \(problem)")
        }
    }

    /// Follows `$ref: '#/components/…'` (and refs to refs).
    private func resolve(_ node: Any) -> Any {
        guard let object = node as? [String: Any], let ref = object["$ref"] as? String, ref.hasPrefix("#/") else { return node }
        var current: Any = spec
        for part in ref.dropFirst(2).split(separator: "/") {
            guard let next = (current as? [String: Any])?[String(part)] else { return node }
            current = next
        }
        return resolve(current)
    }

    /// A small JSON Schema subset: type, required, properties, additionalProperties: false,
    /// items, enum, allOf.
    private func validate(_ value: Any, against node: Any, at pointer: String) -> [String] {
        guard let schema = resolve(node) as? [String: Any] else { return [] }
        var problems: [String] = []
        for part in schema["allOf"] as? [Any] ?? [] { problems += validate(value, against: part, at: pointer) }
        if let allowed = schema["enum"] as? [Any], !allowed.contains(where: { "\($0)" == "\(value)" }) {
            problems.append("\(pointer): \(value) not in \(allowed)")
        }
        switch schema["type"] as? String {
        case "object":
            guard let object = value as? [String: Any] else { return problems + ["\(pointer): expected an object"] }
            for name in schema["required"] as? [String] ?? [] where object[name] == nil {
                problems.append("\(pointer)/\(name): required but missing")
            }
            let properties = schema["properties"] as? [String: Any] ?? [:]
            for (name, child) in object {
                if let property = properties[name] {
                    problems += validate(child, against: property, at: "\(pointer)/\(name)")
                } else if schema["additionalProperties"] as? Bool == false {
                    problems.append("\(pointer)/\(name): not documented")
                }
            }
        case "array":
            guard let array = value as? [Any] else { return problems + ["\(pointer): expected an array"] }
            if let items = schema["items"] {
                for (index, element) in array.enumerated() { problems += validate(element, against: items, at: "\(pointer)/\(index)") }
            }
        case "string":
            if !(value is String) { problems.append("\(pointer): expected a string") }
        case "integer":
            if (value as? NSNumber).map({ $0.doubleValue != $0.doubleValue.rounded() }) ?? true { problems.append("\(pointer): expected an integer") }
        case "number":
            if !(value is NSNumber) { problems.append("\(pointer): expected a number") }
        case "boolean":
            if !(value is Bool) && !((value as? NSNumber).map { $0 == 0 || $0 == 1 } ?? false) { problems.append("\(pointer): expected a boolean") }
        default:
            break
        }
        return problems
    }
}
