import Foundation
import Hummingbird
import SluiceAuth
import SluiceCore
import SluiceLimiter
import SluiceModel
import SluiceQueue
import Tracing

/// `POST /v1/predict`: predictions now, after a hold, or through the queue, as admission decides;
/// `Idempotency-Key` answers repeated.
struct PredictionRoutes {
    let admission: Admission
    let models: ModelHolder
    let idempotency: IdempotencyStore
    /// Where `queue` verdicts go (bounded by the key's `max_depth`).
    let jobs: PartitionedJobQueue
    let metrics: ServiceMetrics

    /// Made once: a set literal allocates its storage on every request.
    private static let scopes: Set<Scope> = [.predict]

    var collection: RouteCollection<SluiceRequestContext> {
        let routes = RouteCollection(context: SluiceRequestContext.self)
        routes.post("/v1/predict") { request, context in
            try await predict(request, context)
        }
        return routes
    }

    /// Screens first (an anonymous caller, or a key provably over its limit, costs no read and
    /// no parse of its body), validates (no Redis involved), then — unless an `Idempotency-Key`
    /// names an earlier answer — admits and serves it (``serve(_:_:record:parsed:)``): two
    /// crossings into ``Admission``.
    private func predict(_ request: Request, _ context: SluiceRequestContext) async throws -> Response {
        guard let model = models.current else { throw Problem.unavailable("No verified model is loaded yet.") }
        // A key provably over its limit is refused before its body is read: the answer Redis
        // would give to any cost (an Idempotency-Key may name an earlier answer: not then).
        let record: KeyRecord
        switch try await admission.screen(request, context, refusingProvenOverLimit: !request.headers.contains(.idempotencyKey)) {
        case .admissible(let admissible): record = admissible
        case .refused(let refusal): return refusal
        }
        var body: [UInt8] = []
        let parsed: Result<PredictionInput, Problem>
        if request.mediaType != "application/json" {
            parsed = .failure(.unsupportedMediaType(["application/json"]))
        } else {
            do {
                body = try await request.collectedBody(limit: context.maxUploadSize)
                parsed = .success(try PredictionInput.parse(body, model: model))
            } catch {
                parsed = .failure(error)
            }
        }
        guard let header = request.headers.value(.idempotencyKey) else {
            return try await serve(request, context, record: record, parsed: parsed, model: model)
        }
        guard let idempotencyKey = IdempotencyStore.parseKey(header) else { throw Problem.invalidIdempotencyKey }
        let fingerprint = IdempotencyStore.fingerprint(body, output: record.effectiveOutput.rawValue)
        let claim = try await Problem.storeCall("idempotency store", metrics: metrics, logger: context.logger) {
            try await idempotency.claim(
                keyID: record.id, idempotencyKey: idempotencyKey, fingerprint: fingerprint, lease: record.plan.deferralHorizon + .seconds(60))
        }
        switch claim {
        case .inProgress:
            throw Problem.idempotencyKeyInProgress
        case .mismatch:
            throw Problem.idempotencyKeyReused
        case .replay(let answer):
            // Replaying costs what polling a job does, apart from the key's own limits.
            return try await admission.admit(request, context, scopes: Self.scopes, charge: .jobStatus, screened: record) { _ in
                var response = answer.response
                response.headers[.idempotentReplayed] = "true"
                return response
            }
        case .new:
            let response: Response
            do {
                response = try await serve(request, context, record: record, parsed: parsed, model: model)
            } catch let problem as Problem {
                let answer = try problem.response(from: request, context: context)
                _ = try await remember(answer, record: record, idempotencyKey: idempotencyKey, fingerprint: fingerprint)
                throw problem
            } catch {
                await idempotency.forget(keyID: record.id, idempotencyKey: idempotencyKey)
                throw error
            }
            return try await remember(response, record: record, idempotencyKey: idempotencyKey, fingerprint: fingerprint)
        }
    }

    /// Stores `response` as the answer to `idempotencyKey` and returns it, its body read once.
    private func remember(_ response: Response, record: KeyRecord, idempotencyKey: String, fingerprint: String) async throws -> Response {
        let writer = CollectingWriter()
        try await response.body.write(writer)
        await idempotency.store(
            status: response.status.code, headers: response.headers, body: writer.bytes, keyID: record.id,
            idempotencyKey: idempotencyKey, fingerprint: fingerprint)
        var copy = response
        copy.body = .init(byteBuffer: ByteBuffer(bytes: writer.bytes))
        return copy
    }

    /// Charges one unit per instance — or a single unit for a refused request, so that invalid
    /// traffic is limited too — then serves the verdict. Invalid input is never deferred: it is
    /// refused now, and never enters the queue.
    /// `model`: the one `parsed` was validated against, which answers a request served now.
    private func serve(
        _ request: Request, _ context: SluiceRequestContext, record: KeyRecord, parsed: Result<PredictionInput, Problem>, model: ModelArtifact
    ) async throws -> Response {
        let input = try? parsed.get()
        return try await admission.admit(
            request, context, scopes: Self.scopes, charge: .key(cost: input?.instances.count ?? 1), deferrable: input != nil, screened: record
        ) { admitted in
            let instances = try parsed.get().instances
            var response: Response
            switch admitted.verdict {
            case .now:
                response = prediction(instances, output: record.effectiveOutput, model: model)
            case .hold(let delay):
                let started = ContinuousClock.now
                // A client that hangs up meanwhile cancels the sleep; its slot stays spent.
                if admission.traced {
                    try await withSpan("hold") { span in
                        span.attributes["sluice.delay_ms"] = Int(delay.seconds * 1000)
                        try await Task.sleep(for: delay)
                    }
                } else {
                    try await Task.sleep(for: delay)
                }
                // The model served after the hold (it may have been replaced meanwhile).
                guard let model = models.current else { throw Problem.unavailable("No verified model is loaded yet.") }
                response = prediction(instances, output: record.effectiveOutput, model: model)
                response.headers[.sluiceDelay] = String(format: "%.3f", (ContinuousClock.now - started).seconds)
                metrics.deferred(held: true)
            case .queue(let slot):
                let id = try await enqueue(PredictionJob(rows: instances, output: record.effectiveOutput), record: record, admitted.decision, context)
                let location = "/v1/jobs/\(id)"
                response = try Response.json(
                    QueuedJobView(id: id.rawValue, not_before: Date(microseconds: slot), location: location), status: .accepted)
                response.headers[.location] = location
                response.headers[.retryAfter] = String(Admission.wholeSeconds(admitted.decision.delay))
            }
            if let applied = admitted.preferenceApplied { response.headers[.preferenceApplied] = applied }
            return response
        }
    }

    /// Queues the job at its reserved slot, unless the key already has `max_depth` jobs pending:
    /// then throws a `429` (by the slot it would have had, at least one of its queued jobs has run).
    private func enqueue(_ job: PredictionJob, record: KeyRecord, _ decision: Decision, _ context: SluiceRequestContext) async throws -> JobID {
        let id = JobID.generate()
        let maxDepth = record.plan.effectiveMaxDepth
        let depth = try await Problem.storeCall("job queue", metrics: metrics, logger: context.logger) {
            try await jobs.enqueue(id, keyID: record.id, input: job.joiningCurrentTrace().encoded(), notBefore: decision.slotTime, maxDepth: maxDepth)
        }
        guard depth != nil else {
            var problem = Admission.rateLimited(decision, detail: "This key already has \(maxDepth) jobs queued (max_depth); retry after the given time.")
            problem.policy = "max_depth"
            problem.retryAfter = Admission.wholeSeconds(decision.delay)
            throw problem
        }
        metrics.deferred(held: false)
        return id
    }

    private func prediction(_ instances: [[Double]], output: PredictionOutput, model: ModelArtifact) -> Response {
        func answer(_ span: (any Span)?) -> String {
            if let span, span.isRecording {
                span.attributes["sluice.model_version"] = model.version
                span.attributes["sluice.instances"] = instances.count
            }
            return model.predictionJSON(for: instances, output: output)
        }
        let json = admission.traced ? withSpan("predict") { span in answer(span) } : answer(nil)
        // Room for the RateLimit fields admission adds: the fields are not copied again.
        var headers = HTTPFields()
        headers.reserveCapacity(6)
        headers[.contentType] = "application/json"
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: json)))
    }
}

/// The body of `202 Accepted` for a queued request.
struct QueuedJobView: Encodable {
    var id: String
    var status = "queued"
    var not_before: Date
    var location: String
}
