import Hummingbird
import SluiceAuth
import SluiceCore
import SluiceModel

extension SluiceServer {
    func addPredictionRoutes(to router: Router<SluiceRequestContext>) {
        router.post("/v1/predict") { request, context in
            try await predict(request, context)
        }
    }

    /// Authenticates first (an anonymous caller, or a key provably over its limit, costs no read
    /// and no parse of its body), validates
    /// (no Redis involved), then — unless an `Idempotency-Key` names an earlier answer — charges
    /// and serves it (see ``serve(_:_:record:parsed:)``).
    private func predict(_ request: Request, _ context: SluiceRequestContext) async throws -> Response {
        guard let model = models.current else { throw Problem.unavailable("No verified model is loaded yet.") }
        let record = try await access.authenticate(request, context: context)
        // A key provably over its limit is refused before its body is read: the answer Redis
        // would give to any cost (an Idempotency-Key may name an earlier answer: not then).
        if request.headers[.idempotencyKey] == nil, let refusal = access.provenRefusal(record) {
            RequestFacts.record(keyID: record.id)
            RequestFacts.record(decision: "denied")
            throw refusal
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
        guard let header = request.headers[.idempotencyKey] else {
            return try await serve(request, context, record: record, parsed: parsed)
        }
        guard let idempotencyKey = IdempotencyStore.parseKey(header) else { throw Problem.invalidIdempotencyKey }
        let fingerprint = IdempotencyStore.fingerprint(body, output: record.effectiveOutput.rawValue)
        let claim: IdempotencyStore.Claim
        do {
            claim = try await idempotency.claim(
                keyID: record.id, idempotencyKey: idempotencyKey, fingerprint: fingerprint, lease: record.deferralHorizon + .seconds(60))
        } catch {
            throw Problem.storeFailure("idempotency store", cause: error, metrics: metrics, logger: context.logger)
        }
        switch claim {
        case .inProgress:
            throw Problem.idempotencyKeyInProgress
        case .mismatch:
            throw Problem.idempotencyKeyReused
        case .replay(let answer):
            // Replaying costs what polling a job does, apart from the key's own limits.
            return try await guarded(request, context, scopes: [.predict], charge: .jobStatus, authenticated: record) { _, _ in
                var response = answer.response
                response.headers[.idempotentReplayed] = "true"
                return response
            }
        case .new:
            let response: Response
            do {
                response = try await serve(request, context, record: record, parsed: parsed)
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
    /// traffic is limited too — then predicts now, after holding the request until its slot, or
    /// through the queue (see ``defer(_:_:record:decision:)``). Invalid input is never deferred:
    /// it is refused now, and never enters the queue.
    private func serve(
        _ request: Request, _ context: SluiceRequestContext, record: KeyRecord, parsed: Result<PredictionInput, Problem>
    ) async throws -> Response {
        let input = try? parsed.get()
        let charge = Charge.key(cost: input?.instances.count ?? 1, deferrable: input != nil)
        return try await guarded(request, context, scopes: [.predict], charge: charge, authenticated: record) { record, decision in
            let instances = try parsed.get().instances
            guard let model = models.current else { throw Problem.unavailable("No verified model is loaded yet.") }
            guard decision.delay > .zero else { return Self.predictionResponse(for: instances, model: model, output: record.effectiveOutput) }
            return try await self.defer(instances, request, record: record, decision: decision)
        }
    }

    static func predictionResponse(for instances: [[Double]], model: ModelArtifact, output: PredictionOutput) -> Response {
        Response(
            status: .ok, headers: [.contentType: "application/json"],
            body: .init(byteBuffer: ByteBuffer(string: model.predictionJSON(for: instances, output: output))))
    }
}
