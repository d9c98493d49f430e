import Foundation
import SluiceTestSupport
import Testing

/// OpenTelemetry traces from real processes to a real OTLP/HTTP receiver on loopback
/// (`Tracing/otlp_receiver.py`, opentelemetry-proto): an incoming `traceparent` continued
/// through admission, Redis, a hold and the prediction, and — through the job's stored trace
/// context — into the worker that runs a queued request.
@Suite("Tracing with OpenTelemetry", .serialized)
struct TracingTests {
    struct Span: Decodable {
        let service: String?
        let trace_id: String
        let span_id: String
        let parent_span_id: String
        let name: String
        let attributes: [String: AttributeValue]
    }

    enum AttributeValue: Decodable, Equatable {
        case string(String), number(Double), bool(Bool)
        init(from decoder: any Decoder) throws {
            let container = try decoder.singleValueContainer()
            if let value = try? container.decode(Bool.self) { self = .bool(value) }
            else if let value = try? container.decode(Double.self) { self = .number(value) }
            else { self = .string(try container.decode(String.self)) }
        }
    }

    /// The receiver, and the spans it has written so far.
    final class Receiver: Sendable {
        let process: BackgroundCommand
        let spansFile: String
        let port: Int

        init() async throws {
            let bin = try #require(SchemathesisTests.pythonBin, "run the tests with scripts/test: it installs opentelemetry-proto")
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-otlp-\(UUID().uuidString.prefix(8))").path
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            spansFile = "\(directory)/spans.jsonl"
            process = try BackgroundCommand([
                "\(bin)/python3", "\(SchemathesisTests.root)/Tests/SluiceServiceTests/Tracing/otlp_receiver.py", "\(directory)/port", spansFile,
            ])
            var port: Int?
            for _ in 0..<100 where port == nil {
                port = (try? String(contentsOfFile: "\(directory)/port", encoding: .utf8)).flatMap { Int($0) }
                if port == nil { try await Task.sleep(for: .milliseconds(100)) }
            }
            self.port = try #require(port, "the receiver started: \(process.log)")
        }

        deinit { process.terminate() }

        var spans: [Span] {
            let text = (try? String(contentsOfFile: spansFile, encoding: .utf8)) ?? ""
            return text.split(separator: "\n").compactMap { try? JSONDecoder().decode(Span.self, from: Data($0.utf8)) }
        }

        /// The spans of one trace, once `done` holds for them (or after 15 s, whatever arrived).
        func trace(_ id: String, until done: ([Span]) -> Bool) async throws -> [Span] {
            for _ in 0..<150 {
                let found = spans.filter { $0.trace_id == id }
                if done(found) { return found }
                try await Task.sleep(for: .milliseconds(100))
            }
            return spans.filter { $0.trace_id == id }
        }
    }

    static func traceparent() -> (header: String, traceID: String, parentID: String) {
        let hex = { (bytes: Int) in (0..<bytes).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined() }
        let traceID = hex(16), parentID = hex(8)
        return ("00-\(traceID)-\(parentID)-01", traceID, parentID)
    }

    static let oneASecond = #"[{"name":"default","rate":1,"period":1,"burst":1}]"#

    @Test func aHeldRequestAndAQueuedJobAreTracedAcrossReplicaAndWorker() async throws {
        let receiver = try await Receiver()
        let cluster = try await Cluster(workers: 1, environment: [
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:\(receiver.port)", "OTEL_BSP_SCHEDULE_DELAY": "200",
        ])
        let held = try await cluster.createKey(scopes: ["predict"], policies: Self.oneASecond, extra: #","overflow":"delay","max_delay":5"#).key
        let queued = try await cluster.createKey(scopes: ["predict"], policies: Self.oneASecond, extra: #","overflow":"queue""#).key
        #expect(try await HTTP.json("POST", "\(cluster.url)/v1/predict", key: held, Cluster.setosa).status == 200)

        // A held request: one trace, continued from the client's traceparent.
        let first = Self.traceparent()
        let holdResponse = try await HTTP.json("POST", "\(cluster.url)/v1/predict", key: held, headers: ["traceparent": first.header], Cluster.setosa)
        #expect(holdResponse.status == 200 && holdResponse.header("Sluice-Delay") != nil)
        let expected: Set<String> = ["/v1/predict", "admission", "redis EVALSHA", "hold", "predict"]
        let heldSpans = try await receiver.trace(first.traceID) { expected.isSubset(of: Set($0.map(\.name))) }
        #expect(expected.isSubset(of: Set(heldSpans.map(\.name))), "\(heldSpans.map(\.name))")
        let server = try #require(heldSpans.first { $0.name == "/v1/predict" })
        #expect(server.parent_span_id == first.parentID, "the request span continues the client's span")
        #expect(heldSpans.allSatisfy { $0.service == "sluice" })
        for name in ["admission", "hold", "predict"] {
            #expect(heldSpans.first { $0.name == name }?.parent_span_id == server.span_id, "\(name) is a child of the request span")
        }
        let admission = try #require(heldSpans.first { $0.name == "admission" })
        #expect(admission.attributes["sluice.decision"] == .string("deferred"))
        #expect(admission.attributes["sluice.limiter"] == .string("redis"))
        #expect(admission.attributes["sluice.policy"] == .string("default"))
        #expect(heldSpans.contains { $0.name == "redis EVALSHA" && $0.parent_span_id == admission.span_id }, "the limiter's Redis call under admission")

        // A queued request: the replica's spans and the worker's run of the job, one trace.
        let second = Self.traceparent()
        #expect(try await HTTP.json("POST", "\(cluster.url)/v1/predict", key: queued, Cluster.setosa).status == 200)
        let accepted = try await HTTP.json(
            "POST", "\(cluster.url)/v1/predict", key: queued, headers: ["traceparent": second.header, "Prefer": "respond-async"], Cluster.setosa)
        #expect(accepted.status == 202)
        let jobSpans = try await receiver.trace(second.traceID) { spans in spans.contains { $0.name == "job" } && spans.contains { $0.name == "/v1/predict" } }
        let request = try #require(jobSpans.first { $0.name == "/v1/predict" }, "\(jobSpans.map(\.name))")
        let job = try #require(jobSpans.first { $0.name == "job" }, "the worker's span arrived: \(jobSpans.map(\.name)) \(cluster.workers[0].log.suffix(800))")
        #expect(request.service == "sluice" && job.service == "sluice-worker")
        #expect(job.parent_span_id == request.span_id, "the job runs as a child of the request that queued it")
        #expect(jobSpans.contains { $0.service == "sluice-worker" && $0.name.hasPrefix("redis ") && $0.parent_span_id == job.span_id },
                "the worker's Redis calls under the job")

        // Background loops (heartbeats, job claims, model polls) send no root span per Redis call.
        #expect(!receiver.spans.contains { $0.name.hasPrefix("redis ") && $0.parent_span_id.isEmpty },
                "\(receiver.spans.filter { $0.parent_span_id.isEmpty }.prefix(5).map(\.name))")
    }

    @Test func tracingIsOffUnlessAskedAndRefusesWhatThisBuildCannotExport() async throws {
        let receiver = try await Receiver()
        let endpoint = "http://127.0.0.1:\(receiver.port)"
        let cluster = try await Cluster(environment: ["OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_SDK_DISABLED": "true"])
        let key = try await cluster.createKey(scopes: ["predict"]).key
        let parent = Self.traceparent()
        #expect(try await HTTP.json("POST", "\(cluster.url)/v1/predict", key: key, headers: ["traceparent": parent.header], Cluster.setosa).status == 200)
        try await Task.sleep(for: .seconds(1))
        #expect(receiver.spans.isEmpty, "OTEL_SDK_DISABLED=true sends nothing")

        // Started in the background: a replica that did start would otherwise never return.
        for (name, value) in [("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"), ("OTEL_TRACES_EXPORTER", "zipkin")] {
            let refused = try BackgroundCommand(
                [ServiceProcess.binary, "serve", "--redis", cluster.redis.url, "--port", "0"],
                environment: [
                    "SLUICE_ADMIN_KEY": cluster.adminKey, "SLUICE_MODEL_SIGNING_KEY": cluster.signingKey,
                    "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, name: value,
                ])
            defer { refused.terminate() }
            let status = try? refused.wait(timeout: 10)
            #expect(status == 78 && refused.log.contains("\(name)=\(value) is not supported"), "\(refused.log)")
        }
    }
}
