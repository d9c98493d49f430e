import Hummingbird
import SluiceAuth

extension SluiceServer {
    func addPredictionRoutes(to router: Router<SluiceRequestContext>) {
        router.post("/v1/predict") { request, context in
            try await predict(request, context)
        }
    }

    /// Validates first (no Redis involved), then charges one unit per instance — or a single unit
    /// for a refused request, so that invalid traffic is limited too — then predicts.
    private func predict(_ request: Request, _ context: SluiceRequestContext) async throws -> Response {
        guard let model = models.current else { throw Problem.unavailable("No verified model is loaded yet.") }
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
        return try await guarded(request, context, scopes: [.predict], cost: input?.instances.count ?? 1) { _ in
            if let refusal { throw refusal }
            return try Response.json(Self.predictions(for: input!.instances, model: model))
        }
    }

    struct Predictions: Encodable {
        struct Prediction: Encodable {
            var label: String
            var probabilities: [String: Double]
        }
        var model_version: Int
        var predictions: [Prediction]
    }

    static func predictions(for instances: [[Double]], model: SluiceModel.ModelArtifact) -> Predictions {
        Predictions(
            model_version: model.version,
            predictions: instances.map { row in
                let p = model.probabilities(row)
                let best = p.indices.max { p[$0] < p[$1] }!
                return .init(
                    label: model.classes[best],
                    probabilities: Dictionary(uniqueKeysWithValues: zip(model.classes, p.map { ($0 * 1e6).rounded() / 1e6 })))
            })
    }
}

import SluiceModel
