import Foundation
import SluiceTestSupport
import Testing

/// `openapi.yaml` as users meet it: clients generated from it, in Python (`openapi-python-client`)
/// and in Swift (`apple/swift-openapi-generator`'s build plugin, `Clients/swift`), each running the
/// same session against a real replica and worker — create a key, predict one instance and a batch,
/// read `RateLimit`, honour a 429's `Retry-After`, queue a job with `Prefer: respond-async` and poll
/// it, rotate and revoke the key, read a 422's typed problem details (`Clients/*/scenario`).
@Suite("generated clients against a live replica", .serialized)
struct GeneratedClientTests {
    static let root = SchemathesisTests.root

    @Test func aGeneratedPythonClientRunsTheScenario() async throws {
        let bin = try #require(SchemathesisTests.pythonBin, "run the tests with scripts/test: it installs openapi-python-client")
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-python-client-\(UUID().uuidString.prefix(8))").path
        defer { try? FileManager.default.removeItem(atPath: output) }
        let (generated, log) = try runCommand([
            "\(bin)/openapi-python-client", "generate", "--path", SchemathesisTests.specPath,
            "--config", "\(Self.root)/Clients/python/openapi-python-client.yaml", "--meta", "none",
            "--output-path", "\(output)/sluice_prediction_api_client",
        ])
        #expect(generated == 0, "\(log)")
        // A warning means a part of the API was left out of the client.
        #expect(!log.contains("Warning") && !log.contains("WARNING"), "\(log)")
        let cluster = try await Cluster(workers: 1)
        let (status, transcript) = try runCommand(
            ["\(bin)/python3", "\(Self.root)/Clients/python/scenario.py", cluster.url, cluster.adminKey], environment: ["PYTHONPATH": output])
        #expect(status == 0 && transcript.contains("scenario passed"), "\(transcript)")
    }

    /// The generator runs as a build plugin, so the client is always the spec's: building the
    /// package the first time takes about 1.5 minutes (OpenAPIKit, Yams); later builds seconds.
    @Test func aGeneratedSwiftClientRunsTheScenario() async throws {
        let package = "\(Self.root)/Clients/swift"
        let (built, log) = try runCommand(["swift", "build", "--package-path", package, "--product", "SluiceClientScenario"])
        #expect(built == 0, "\(log.suffix(4000))")
        let cluster = try await Cluster(workers: 1)
        let (status, transcript) = try runCommand(["\(package)/.build/debug/SluiceClientScenario", cluster.url, cluster.adminKey])
        #expect(status == 0 && transcript.contains("scenario passed"), "\(transcript)")
    }
}
