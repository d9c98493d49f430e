import Foundation
import Hummingbird
import SluiceCore
import SluiceModel
import SluiceQueue

/// `GET /v1/jobs/{id}`: a queued request's status and, once run, its result. Only the key that
/// created the job may read it; to every other key it does not exist (404), so existence does
/// not leak.
struct JobRoutes {
    let admission: Admission
    let jobs: PartitionedJobQueue
    let metrics: ServiceMetrics

    var collection: RouteCollection<SluiceRequestContext> {
        let routes = RouteCollection(context: SluiceRequestContext.self)
        routes.get("/v1/jobs/:id") { request, context in
            try await admission.admit(request, context, scopes: [.predict], charge: .jobStatus) { admitted in
                guard let id = context.parameters.get("id").flatMap(JobID.init) else { throw Self.noSuchJob }
                let job = try await Problem.storeCall("job queue", metrics: metrics, logger: context.logger) {
                    try await jobs.job(id, keyID: admitted.record.id)
                }
                guard let job, job.keyID == admitted.record.id else { throw Self.noSuchJob }
                return try Self.response(job, redisNow: admitted.decision.decidedAt)
            }
        }
        return routes
    }

    static let noSuchJob = Problem.notFound("No such job for this key (or its result has expired).")

    /// `202` with `Retry-After` while pending, `200` with the result (or the failure) once run.
    /// `redisNow` (µs, from the poll's own limiter decision) is on the clock `not_before` is on:
    /// the replica's clock may be off from Redis' by any amount.
    static func response(_ job: Job, redisNow: Int64) throws -> Response {
        var response = try Response.json(JobView(job), status: job.status.isFinished ? .ok : .accepted)
        if !job.status.isFinished {
            let now = redisNow > 0 ? redisNow : Int64(Date().timeIntervalSince1970 * 1_000_000)
            let wait = Double(job.notBefore - now) / 1_000_000
            response.headers[.retryAfter] = String(max(1, Int(wait.rounded(.up))))
        }
        return response
    }
}

/// A job as `GET /v1/jobs/{id}` shows it; `result` is the prediction body once it succeeded.
struct JobView: Encodable {
    var id: String
    var status: String
    var not_before: Date
    var created_at: Date
    var started_at: Date?
    var completed_at: Date?
    var attempts: Int
    var error: String?
    var result: PredictionResult?

    init(_ job: Job) {
        id = job.id.rawValue
        status = job.status.rawValue
        not_before = Date(microseconds: job.notBefore)
        created_at = Date(microseconds: job.createdAt)
        started_at = job.startedAt.map(Date.init(microseconds:))
        completed_at = job.completedAt.map(Date.init(microseconds:))
        attempts = job.attempts
        error = job.error
        result = job.result.flatMap(PredictionResult.init(json:))
    }
}
