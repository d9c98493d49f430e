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

    /// Authenticates first (an anonymous caller costs no read and no parse of its body), validates
    /// (no Redis involved), then charges one unit per instance — or a single unit for a refused
    /// request, so that invalid traffic is limited too — then predicts now, after holding the
    /// request until its slot, or through the queue (see ``defer(_:_:record:decision:)``).
    private func predict(_ request: Request, _ context: SluiceRequestContext) async throws -> Response {
        guard let model = models.current else { throw Problem.unavailable("No verified model is loaded yet.") }
        let record = try await access.authenticate(request, context: context)
        var input: PredictionInput?
        var refusal: Problem?
        if request.mediaType != "application/json" {
            refusal = .unsupportedMediaType(["application/json"])
        } else {
            do {
                input = try PredictionInput.parse(try await request.collectedBody(limit: context.maxUploadSize), model: model)
            } catch {
                refusal = error
            }
        }
        // Invalid input is never deferred: it is refused now, and never enters the queue.
        let charge = Charge.key(cost: input?.instances.count ?? 1, deferrable: refusal == nil)
        return try await guarded(request, context, scopes: [.predict], charge: charge, authenticated: record) { record, decision in
            if let refusal { throw refusal }
            let instances = input!.instances
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
