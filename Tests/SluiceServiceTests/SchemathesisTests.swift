import Foundation
import SluiceTestSupport
import Testing

/// The live API against `openapi.yaml`, driven by schemathesis (every check: server errors, status
/// codes, content types, response headers and schemas, negative data, unsupported methods, …) as
/// each kind of key, through the hooks in `Schemathesis/hooks.py`. `scripts/test` installs the
/// tools in a venv and exports `SLUICE_TEST_PYTHON_BIN`.
@Suite("schemathesis against a live replica", .serialized)
struct SchemathesisTests {
    static var pythonBin: String? { ProcessInfo.processInfo.environment["SLUICE_TEST_PYTHON_BIN"] }
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../..").standardized.path
    static let specPath = "\(root)/openapi.yaml"

    @Test func theSpecIsValidOpenAPI() throws {
        let bin = try #require(Self.pythonBin, "run the tests with scripts/test: it installs openapi-spec-validator")
        let (status, output) = try runCommand(["\(bin)/openapi-spec-validator", Self.specPath])
        #expect(status == 0, "\(output)")
    }

    @Test func everyOperationHoldsToTheSpecForEveryKindOfKey() async throws {
        let bin = try #require(Self.pythonBin, "run the tests with scripts/test: it installs schemathesis")
        // Failed authentication is probed on purpose: its per-address limit would turn the probes'
        // 401s into 429s (documented, but then nothing else is tested).
        let cluster = try await Cluster(replicaArguments: ["--auth-failure-rate", "1000000", "--auth-failure-burst", "1000000"])
        let unlimited = #"[{"name":"default","rate":100000,"period":1,"burst":100000}]"#
        var keys: [String: String] = [:]
        for scope in ["admin", "predict", "train", "metrics"] {
            keys[scope] = try await cluster.createKey(scopes: [scope], policies: unlimited).key
        }
        let runs: [(key: String?, paths: String)] = [
            (keys["admin"], "^/v1/(keys|models)"), (keys["predict"], "^/v1/(predict|jobs)"), (keys["train"], "^/v1/models"),
            (keys["metrics"], "^/metrics$"), (nil, "^/(healthz|readyz)$"),
        ]
        for run in runs {
            var arguments = [
                "\(bin)/schemathesis", "run", Self.specPath, "--url", cluster.url, "--checks", "all", "--max-examples", "40",
                "--seed", "20261201", "--include-path-regex", run.paths, "--no-color",
            ]
            if let key = run.key { arguments += ["-H", "Authorization: Bearer \(key)"] }
            let (status, output) = try runCommand(
                arguments, environment: ["SCHEMATHESIS_HOOKS": "hooks", "PYTHONPATH": "\(Self.root)/Tests/SluiceServiceTests/Schemathesis"])
            #expect(status == 0, "\(run.paths): \(output.suffix(6000))")
            #expect(output.contains("generated"), "schemathesis ran: \(output.suffix(500))")
        }
    }
}
