import Foundation
import Hummingbird
import SluiceAuth
import SluiceModel

/// `/v1/models`: signed model versions listed and shown (`train` or `admin`), trained from an
/// upload (`train`, behind the activation gate), activated by hand and re-signed with the active
/// signing key (`admin`).
struct ModelRoutes {
    let admission: Admission
    let models: ModelHolder
    let training: TrainingSlot
    let activationGate: ActivationGate
    /// Stored versions kept besides the active and the previous one (``ServiceConfiguration/modelRetention``).
    let retention: Int
    let metrics: ServiceMetrics

    var collection: RouteCollection<SluiceRequestContext> {
        let router = RouteCollection(context: SluiceRequestContext.self)
        router.get("/v1/models") { request, context in
            try await admission.admit(request, context, scopes: [.train, .admin]) { _ in
                let active = try await registryCall(context) { try await models.registry.activeVersion() }
                var summaries: [ModelSummaryView] = []
                for version in try await registryCall(context, { try await models.registry.versions() }) {
                    do throws(ModelError) {
                        let (artifact, keyID) = try await models.registry.loadSigned(version)
                        var summary = ModelSummaryView(artifact, active: active)
                        summary.signing_key_id = keyID
                        summaries.append(summary)
                    } catch {
                        switch error {
                        case .tampered, .malformed:
                            // Listed, so that an admin sees it, but never loadable.
                            context.logger.error("stored model artifact fails verification", metadata: ["model_version": "\(version)", "error": "\(error)"])
                            summaries.append(ModelSummaryView(version: version, verified: false, active: version == active))
                        case .notFound:
                            continue  // pruned since the listing began
                        case .redis:
                            throw Problem.storeFailure("model registry", cause: error, metrics: metrics, logger: context.logger)
                        }
                    }
                }
                return try Response.json(["models": summaries])
            }
        }

        router.get("/v1/models/:version") { request, context in
            try await admission.admit(request, context, scopes: [.train, .admin]) { _ in
                let version = try Self.version(context)
                let active = try await registryCall(context) { try await models.registry.activeVersion() }
                let artifact = try await registryCall(context) { try await models.registry.load(version) }
                return try Response.json(ModelView(artifact: artifact, active: active == version))
            }
        }

        router.post("/v1/models") { request, context in
            try await admission.admit(request, context, scopes: [.train], charge: .training) { admitted in
                try await train(request, context, trainedBy: admitted.record.id)
            }
        }

        router.post("/v1/models/resign") { request, context in
            try await admission.admit(request, context, scopes: [.admin]) { _ in
                let result = try await registryCall(context) { try await models.registry.resign() }
                if !result.refused.isEmpty {
                    metrics.recordRefusedArtifact()
                    context.logger.error("stored model artifacts fail verification; not re-signed", metadata: ["model_versions": "\(result.refused)"])
                }
                context.logger.notice(
                    "re-signed model artifacts", metadata: ["signing_key_id": "\(result.keyID)", "model_versions": "\(result.resigned)"])
                return try Response.json(
                    ResigningView(signing_key_id: result.keyID, resigned: result.resigned, unchanged: result.unchanged, refused: result.refused))
            }
        }

        router.post("/v1/models/:version/activate") { request, context in
            try await admission.admit(request, context, scopes: [.admin]) { _ in
                let version = try Self.version(context)
                try await registryCall(context) { try await models.registry.activate(version) }
                await models.refresh()
                return try Response.json(["active_version": version])
            }
        }
        return router
    }

    private func train(_ request: Request, _ context: SluiceRequestContext, trainedBy: String) async throws -> Response {
        let body = try await request.collectedBody(limit: context.maxUploadSize)
        let data: TrainingData
        do {
            switch request.mediaType {
            case "text/csv": data = try TrainingData.csv(String(decoding: body, as: UTF8.self), schema: .iris)
            case "application/json":
                // One reading of the body (no duplicated keys, no BOM, no unknown top-level fields).
                try StrictBody.validate(body, shape: .object(["rows": .value]))
                data = try TrainingData.json(Data(body), schema: .iris)
            default: throw Problem.unsupportedMediaType(["text/csv", "application/json"])
            }
        } catch let error as DataValidationError {
            throw Problem.invalid(error.problems.map { .init(pointer: $0.pointer, detail: $0.detail) }, detail: "The training data was refused; see errors.")
        }
        let candidate = try await training.run {
            LogisticRegression().train(data, reference: try IrisDataset.load(), trainedBy: trainedBy)
        }
        let stored = try await registryCall(context) { try await models.registry.store(candidate) }
        // Compared with the active version as Redis has it, not with this replica's copy, which
        // may be a moment old.
        let active = try await registryCall(context) { () async throws -> ModelArtifact? in
            guard let version = try await models.registry.activeVersion() else { return nil }
            return try await models.registry.load(version)
        }
        let verdict = activationGate.verdict(
            candidate: stored.metrics.referenceAccuracy, active: active?.metrics.referenceAccuracy)
        if verdict.activates {
            try await registryCall(context) { try await models.registry.activate(stored.version) }
            await models.refresh()
        }
        do {
            let pruned = try await models.registry.prune(retention: retention)
            if !pruned.isEmpty { context.logger.info("pruned model versions", metadata: ["versions": "\(pruned)"]) }
        } catch {
            context.logger.warning("could not prune model versions", metadata: ["error": "\(error)"])
        }
        return try Response.json(
            TrainingView(
                model: ModelSummaryView(stored, active: verdict.activates ? stored.version : active?.version),
                activated: verdict.activates, reason: verdict.reason),
            status: .created)
    }

    private static func version(_ context: SluiceRequestContext) throws -> Int {
        guard let text = context.parameters.get("version"), let version = Int(text), version > 0 else {
            throw Problem.notFound("No such model version.")
        }
        return version
    }

    /// Maps registry errors to problems: unknown → 404, refused → 409, Redis → 503.
    private func registryCall<T>(_ context: SluiceRequestContext, _ call: () async throws -> T) async throws(Problem) -> T {
        do {
            return try await call()
        } catch {
            guard let error = error as? ModelError else { throw Problem.unavailable("The model registry failed; retry shortly.") }
            switch error {
            case .notFound(let version): throw Problem.notFound("Model version \(version) does not exist.")
            case .tampered, .malformed:
                metrics.recordRefusedArtifact()
                context.logger.error("refused model artifact", metadata: ["error": "\(error)"])
                throw Problem.conflict("\(error).")
            case .redis:
                throw Problem.storeFailure("model registry", cause: error, metrics: metrics, logger: context.logger)
            }
        }
    }
}

/// A model as listed: what it is and how good, without its weights.
struct ModelSummaryView: Encodable {
    var version: Int
    var verified: Bool
    var active: Bool
    var created_at: Date?
    var trained_by: String?
    var training_data_sha256: String?
    var metrics: ModelArtifact.Metrics?
    /// The id of the key that signed it (listed with the summaries, so that an operator sees what
    /// still depends on a key about to be retired).
    var signing_key_id: String?

    init(version: Int, verified: Bool, active: Bool) {
        self.version = version
        self.verified = verified
        self.active = active
    }

    init(_ artifact: ModelArtifact, active: Int?) {
        self.init(version: artifact.version, verified: true, active: artifact.version == active)
        created_at = artifact.createdAt
        trained_by = artifact.trainedBy
        training_data_sha256 = artifact.trainingDataSHA256
        metrics = artifact.metrics
    }
}

/// The answer to `POST /v1/models/resign`: every stored version is now signed by the active key,
/// apart from those that verify with no listed key (`refused`, left as they are).
struct ResigningView: Encodable {
    var signing_key_id: String
    var resigned: [Int]
    var unchanged: [Int]
    var refused: [Int]
}

/// The answer to an upload: the stored version, and whether the activation gate let it through.
struct TrainingView: Encodable {
    var model: ModelSummaryView
    var activated: Bool
    var reason: String
}

/// A model as shown alone: the whole signed artifact.
struct ModelView: Encodable {
    var artifact: ModelArtifact
    var active: Bool
}
