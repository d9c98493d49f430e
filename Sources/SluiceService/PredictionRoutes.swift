import Hummingbird
import SluiceAuth
import SluiceModel

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
            return Self.predictionResponse(for: input!.instances, model: model)
        }
    }

    /// `{"model_version": 1, "predictions": [{"label": …, "probabilities": {…}}]}`, written
    /// directly: this is the hottest response, and the class names are the model's own (they are
    /// validated training labels, escaped here all the same).
    static func predictionResponse(for instances: [[Double]], model: ModelArtifact) -> Response {
        var json = "{\"model_version\":\(model.version),\"predictions\":["
        for (index, row) in instances.enumerated() {
            let p = model.probabilities(row)
            let best = p.indices.max { p[$0] < p[$1] }!
            if index > 0 { json += "," }
            json += "{\"label\":\(jsonString(model.classes[best])),\"probabilities\":{"
            for (k, name) in model.classes.enumerated() {
                if k > 0 { json += "," }
                json += "\(jsonString(name)):\((p[k] * 1e6).rounded() / 1e6)"
            }
            json += "}}"
        }
        json += "]}"
        return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: json)))
    }

    private static func jsonString(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case _ where scalar.value < 0x20: out += String(format: "\\u%04x", scalar.value)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}
