import Foundation
import HTTPTypes
import Hummingbird
import SluiceAuth
import SluiceCore
import SluiceLimiter
import SluiceModel
import SluiceQueue

/// What a client prefers for a request over its limit (RFC 7240 `Prefer`).
struct DeferralPreferences: Equatable {
    /// `respond-async`: queue (answer 202) even when holding the request would do.
    var respondAsync = false
    /// `wait=N`: hold the request at most N seconds; a later slot is queued instead.
    var wait: Int?

    init(respondAsync: Bool = false, wait: Int? = nil) {
        self.respondAsync = respondAsync
        self.wait = wait
    }

    /// Parses every `Prefer` field: comma-separated preferences, parameters after `;` ignored,
    /// names case-insensitive; unknown or malformed preferences are ignored, as RFC 7240 asks.
    init(_ headers: HTTPFields) {
        for field in headers[values: .prefer] {
            for item in field.split(separator: ",") {
                let token = item.split(separator: ";").first?.trimmingCharacters(in: .whitespaces).lowercased() ?? ""
                if token == "respond-async" { respondAsync = true }
                if token.hasPrefix("wait="), let seconds = Int(token.dropFirst(5)), seconds >= 0 { wait = seconds }
            }
        }
    }
}

/// How a reserved request is served.
enum DeferralPlan: Equatable {
    /// Hold it until its slot, then serve it (`Preference-Applied` when a preference decided so).
    case hold(applied: String?)
    /// Queue it for a worker and answer `202 Accepted`.
    case enqueue(applied: String?)

    /// `delay` keys hold unless the client asked for `respond-async` or a `wait` shorter than the
    /// delay; `queue` keys queue unless the client's `wait` covers the delay.
    static func choose(overflow: KeyRecord.Overflow, preferences: DeferralPreferences, delay: Duration) -> DeferralPlan {
        let waitCovers = preferences.wait.map { delay <= .seconds($0) }
        let waitApplied = preferences.wait.map { "wait=\($0)" }
        switch overflow {
        case .reject, .delay:
            if preferences.respondAsync { return .enqueue(applied: "respond-async") }
            if waitCovers == false { return .enqueue(applied: waitApplied) }
            return .hold(applied: waitApplied)
        case .queue:
            if !preferences.respondAsync, waitCovers == true { return .hold(applied: waitApplied) }
            return .enqueue(applied: preferences.respondAsync ? "respond-async" : nil)
        }
    }
}

extension SluiceServer {
    /// Serves a request whose slot was reserved `decision.delay` ahead: holds it without blocking a
    /// thread and answers with `Sluice-Delay`, or queues it and answers `202 Accepted`.
    func `defer`(_ instances: [[Double]], _ request: Request, record: KeyRecord, decision: Decision) async throws -> Response {
        let plan = DeferralPlan.choose(overflow: record.overflow, preferences: DeferralPreferences(request.headers), delay: decision.delay)
        switch plan {
        case .hold(let applied):
            let started = ContinuousClock.now
            // A client that hangs up meanwhile cancels the sleep; its slot stays spent.
            try await Task.sleep(for: decision.delay)
            guard let model = models.current else { throw Problem.unavailable("No verified model is loaded yet.") }
            var response = Self.predictionResponse(for: instances, model: model, output: record.effectiveOutput)
            response.headers[.sluiceDelay] = String(format: "%.3f", (ContinuousClock.now - started).seconds)
            if let applied { response.headers[.preferenceApplied] = applied }
            metrics.deferred(held: true)
            return response
        case .enqueue(let applied):
            var response = try await enqueue(instances, record: record, decision: decision)
            if let applied { response.headers[.preferenceApplied] = applied }
            metrics.deferred(held: false)
            return response
        }
    }

    private func enqueue(_ instances: [[Double]], record: KeyRecord, decision: Decision) async throws -> Response {
        let id = JobID.generate()
        let input = PredictionJob(rows: instances, output: record.effectiveOutput).encoded()
        let depth = try await queueCall {
            try await jobs.enqueue(id, keyID: record.id, input: input, notBefore: decision.slotTime, maxDepth: record.effectiveMaxDepth)
        }
        guard depth != nil else {
            var problem = access.rateLimited(
                decision, detail: "This key already has \(record.effectiveMaxDepth) jobs queued (max_depth); retry after the given time.")
            problem.policy = "max_depth"
            // By the slot it would have had, at least one of the key's queued jobs has run.
            problem.retryAfter = AccessControl.wholeSeconds(decision.delay)
            throw problem
        }
        let location = "/v1/jobs/\(id)"
        var response = try Response.json(
            JobAccepted(id: id.rawValue, not_before: Date(microseconds: decision.slotTime), location: location), status: .accepted)
        response.headers[.location] = location
        response.headers[.retryAfter] = String(AccessControl.wholeSeconds(decision.delay))
        return response
    }
}

/// The body of `202 Accepted` for a queued request.
struct JobAccepted: Encodable {
    var id: String
    var status = "queued"
    var not_before: Date
    var location: String
}

extension Date {
    /// A time in microseconds since the Unix epoch (how Redis' clock is kept in the scripts).
    init(microseconds: Int64) {
        self.init(timeIntervalSince1970: Double(microseconds) / 1_000_000)
    }
}
