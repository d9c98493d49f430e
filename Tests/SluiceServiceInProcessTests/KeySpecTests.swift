import Foundation
import SluiceTestSupport
import Testing

/// Admin request bodies are parsed as strictly as prediction bodies: one reading of every body,
/// no silently ignored fields, and no limits the limiter cannot take.
@Suite("In-process: strict admin bodies and key specs", .serialized)
struct InProcessKeySpecTests {
    static func firstPointer(_ response: HTTP.Response) -> String? {
        (response.json?["errors"] as? [[String: Any]])?.first?["pointer"] as? String
    }

    @Test func keySpecsAreReadOneWayOnly() async throws {
        try await InProcessReplica.run { replica in
            func create(_ body: String, headers: [String: String] = [:]) async throws -> HTTP.Response {
                try await replica.json("POST", "/v1/keys", key: replica.adminKey, headers: headers, body)
            }
            // Foundation would read the first "scopes" (admin), Python and JavaScript the last.
            let duplicated = try await create(#"{"name":"x","scopes":["admin"],"scopes":["predict"]}"#)
            #expect(duplicated.status == 422 && Self.firstPointer(duplicated) == "/scopes", "\(duplicated.status) \(duplicated.text)")
            let typo = try await create(#"{"name":"x","scopes":["predict"],"overflow":"delay","max_dealy":5}"#)
            #expect(typo.status == 422 && Self.firstPointer(typo) == "/max_dealy", "\(typo.text)")
            // A mode Sluice does not know is refused, not silently enforced (`shadow` is one it knows).
            let unknownMode = try await create(#"{"name":"x","scopes":["predict"],"policies":[{"name":"p","rate":1,"period":1,"mode":"dry-run"}]}"#)
            #expect(unknownMode.status == 422 && Self.firstPointer(unknownMode) == "/policies/0/mode", "\(unknownMode.text)")
            let bom = try await replica.send(
                "POST", "/v1/keys", headers: ["Authorization": "Bearer \(replica.adminKey)", "Content-Type": "application/json"],
                body: Data([0xEF, 0xBB, 0xBF] + Array(#"{"name":"x","scopes":["predict"]}"#.utf8)))
            #expect(bom.status == 400)
            let fractional = try await create(#"{"name":"x","scopes":["predict"],"policies":[{"name":"p","rate":1.5,"period":1}]}"#)
            #expect(fractional.status == 422 && Self.firstPointer(fractional) == "/policies/0/rate", "\(fractional.text)")
            for name in [#"a\u0000b"#, #"bell\u0007"#, #"txt\u202Eexe"#] {
                let refused = try await create(#"{"name":"\#(name)","scopes":["predict"]}"#)
                #expect(refused.status == 422 && Self.firstPointer(refused) == "/name", "\(name): \(refused.status)")
            }
            #expect(try await create(#"{"name":"café ☕","scopes":["predict"]}"#).status == 201)
        }
    }

    @Test func limitsTheLimiterCannotTakeAreRefusedAtCreation() async throws {
        try await InProcessReplica.run { replica in
            func create(_ fields: String) async throws -> HTTP.Response {
                try await replica.json("POST", "/v1/keys", key: replica.adminKey, #"{"name":"x","scopes":["predict"]\#(fields)}"#)
            }
            for fields in [
                #","quota_per_day":9007199254740992"#,
                #","policies":[{"name":"p","rate":4611686018427387904,"period":1}]"#,
                #","policies":[{"name":"p","rate":1,"period":1,"burst":4611686018427387904}]"#,
                #","policies":[{"name":"p","rate":1,"period":1000000000,"burst":3}]"#,
            ] {
                let refused = try await create(fields)
                #expect(refused.status == 422, "\(fields): \(refused.status) \(refused.text)")
            }
            // Right at the edge, the key is created and its requests are decided (never a 503).
            let edge = try await create(#","policies":[{"name":"p","rate":1,"period":1000000000,"burst":2}],"quota_per_day":1000000"#)
            let key = try #require(edge.json?["key"] as? String, "\(edge.text)")
            #expect(try await replica.json("POST", "/v1/predict", key: key, Cluster.setosa).status == 200)
        }
    }

    @Test func rotationTakesOnlyJSONAndNoUnknownFields() async throws {
        try await InProcessReplica.run { replica in
            let (_, id) = try await replica.createKey(scopes: ["predict"])
            let url = "/v1/keys/\(id)/rotate"
            let admin = ["Authorization": "Bearer \(replica.adminKey)"]
            let form = try await replica.send("POST", url, headers: admin.merging(["Content-Type": "text/plain"]) { $1 }, body: Data("grace_period=5".utf8))
            #expect(form.status == 415)
            let typo = try await replica.json("POST", url, key: replica.adminKey, #"{"grace_perod":5}"#)
            #expect(typo.status == 422 && Self.firstPointer(typo) == "/grace_perod")
            #expect(try await replica.json("POST", url, key: replica.adminKey, #"{"grace_period":5}"#).status == 200)
            #expect(try await replica.send("POST", url, headers: admin).status == 200, "an empty body is still fine")
        }
    }

    @Test func trainingUploadsInJSONAreReadOneWayOnly() async throws {
        try await InProcessReplica.run { replica in
            let trainer = try await replica.createKey(scopes: ["train"]).key
            let row = #"{"sepal_length":5.1,"sepal_width":3.5,"petal_length":1.4,"petal_width":0.2,"species":"setosa"}"#
            for (body, pointer) in [(#"{"rows":[\#(row)],"rows":[]}"#, "/rows"), (#"{"rows":[\#(row)],"labels":"x"}"#, "/labels")] {
                let refused = try await replica.json("POST", "/v1/models", key: trainer, body)
                #expect(refused.status == 422 && Self.firstPointer(refused) == pointer, "\(refused.text)")
            }
        }
    }

    @Test func unauthenticatedAnswersCarryNoLimiterClock() async throws {
        try await InProcessReplica.run { replica in
            let response = try await replica.json("POST", "/v1/predict", key: "sk_abcdefgh_" + String(repeating: "x", count: 40), Cluster.setosa)
            #expect(response.status == 401)
            #expect(response.header("RateLimit") != nil, "the address limiter's state is still shown")
            #expect(response.header("Sluice-Slot") == nil)
        }
    }
}
