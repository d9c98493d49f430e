import Hummingbird
import Logging
import SluiceCore
import Synchronization

/// What the handlers learnt about a request, for its log line: set through a task-local box.
final class RequestFacts: Sendable {
    private let facts = Mutex<(keyID: String?, decision: String?)>((nil, nil))

    @TaskLocal static var current: RequestFacts?

    static func record(keyID: String? = nil, decision: String? = nil) {
        current?.facts.withLock { facts in
            if let keyID { facts.keyID = keyID }
            if let decision { facts.decision = decision }
        }
    }

    var snapshot: (keyID: String?, decision: String?) { facts.withLock { $0 } }
}

/// One structured log line and one metric per request: request id, key id (public part only),
/// route, status, decision, latency. Never a key, a secret or a body.
struct RequestLogMiddleware: RouterMiddleware {
    typealias Context = SluiceRequestContext
    let metrics: ServiceMetrics

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard context.logger.logLevel <= .info else { return try await counted(request, context: context, next: next) }
        let started = ContinuousClock.now
        let facts = RequestFacts()
        var status = 500
        defer {
            let route = context.endpointPath ?? "unmatched"
            metrics.recordRequest(route: route, status: status)
            let snapshot = facts.snapshot
            var metadata: Logger.Metadata = [
                "route": "\(request.method) \(route)", "status": "\(status)",
                "latency_ms": "\(String(format: "%.2f", (ContinuousClock.now - started).seconds * 1000))",
            ]
            if let keyID = snapshot.keyID { metadata["key_id"] = "\(keyID)" }
            if let decision = snapshot.decision { metadata["decision"] = "\(decision)" }
            context.logger.info("request", metadata: metadata)
        }
        do {
            let response = try await RequestFacts.$current.withValue(facts) { try await next(request, context) }
            status = response.status.code
            return response
        } catch let error as HTTPResponseError {
            status = error.status.code
            throw error
        }
    }

    /// With the access log off (level above info) only the metric is kept, without the
    /// task-local facts box.
    private func counted(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            let response = try await next(request, context)
            metrics.recordRequest(route: context.endpointPath ?? "unmatched", status: response.status.code)
            return response
        } catch let error as HTTPResponseError {
            metrics.recordRequest(route: context.endpointPath ?? "unmatched", status: error.status.code)
            throw error
        }
    }
}
