import Foundation
import Hummingbird
import SluiceCore
import SluiceQueue

extension SluiceServer {
    func addJobRoutes(to router: Router<SluiceRequestContext>) {
        /// A queued request's status and, once run, its result. Only the key that created the job
        /// may read it; to every other key it does not exist (404), so existence does not leak.
        router.get("/v1/jobs/:id") { request, context in
            try await guarded(request, context, scopes: [.predict], charge: .jobStatus) { record, decision in
                guard let id = context.parameters.get("id").flatMap(JobID.init) else { throw Self.noSuchJob }
                guard let job = try await queueCall({ try await jobs.job(id, keyID: record.id) }), job.keyID == record.id else { throw Self.noSuchJob }
                return try Self.jobResponse(job, redisNow: decision.decidedAt)
            }
        }
    }

    /// Runs a queue call; a Redis failure is a `503` (fail-secure), counted.
    func queueCall<T>(_ call: () async throws -> T) async throws(Problem) -> T {
        do {
            return try await call()
        } catch {
            throw Problem.storeFailure("job queue", cause: error, metrics: metrics, logger: logger)
        }
    }

    static let noSuchJob = Problem.notFound("No such job for this key (or its result has expired).")

    /// `202` with `Retry-After` while pending, `200` with the result (or the failure) once run.
    /// `redisNow` (µs, from the poll's own limiter decision) is on the clock `not_before` is on:
    /// the replica's clock may be off from Redis' by any amount.
    static func jobResponse(_ job: Job, redisNow: Int64) throws -> Response {
        let view = JobView(
            id: job.id.rawValue, status: job.status.rawValue, not_before: Date(microseconds: job.notBefore),
            created_at: Date(microseconds: job.createdAt), started_at: job.startedAt.map(Date.init(microseconds:)),
            completed_at: job.completedAt.map(Date.init(microseconds:)), attempts: job.attempts, error: job.error)
        var body = try JSONEncoder.sluice.encode(view)
        if let result = job.result {
            // The result is the worker's own prediction JSON, spliced in as the `result` member.
            body.removeLast()
            body.append(contentsOf: Array(",\"result\":\(result)}".utf8))
        }
        var response = Response(
            status: job.status.isFinished ? .ok : .accepted, headers: [.contentType: "application/json"],
            body: .init(byteBuffer: ByteBuffer(bytes: body)))
        if !job.status.isFinished {
            let now = redisNow > 0 ? redisNow : Int64(Date().timeIntervalSince1970 * 1_000_000)
            let wait = Double(job.notBefore - now) / 1_000_000
            response.headers[.retryAfter] = String(max(1, Int(wait.rounded(.up))))
        }
        return response
    }
}

/// A job as `GET /v1/jobs/{id}` shows it (plus `result` once it succeeded).
struct JobView: Encodable {
    var id: String
    var status: String
    var not_before: Date
    var created_at: Date
    var started_at: Date?
    var completed_at: Date?
    var attempts: Int
    var error: String?
}
