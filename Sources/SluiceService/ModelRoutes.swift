import Foundation
import Hummingbird
import SluiceAuth
import SluiceModel

extension SluiceServer {
    func addModelRoutes(to router: Router<SluiceRequestContext>) {
        router.get("/v1/models") { request, context in
            try await guarded(request, context, scopes: [.train, .admin]) { _ in
                let active = try await registryCall { try await models.registry.activeVersion() }
                var summaries: [ModelSummary] = []
                for version in try await registryCall({ try await models.registry.versions() }) {
                    do throws(ModelError) {
                        summaries.append(ModelSummary(try await models.registry.load(version), active: active))
                    } catch {
                        switch error {
                        case .tampered, .malformed:
                            // Listed, so that an admin sees it, but never loadable.
                            logger.error("stored model artifact fails verification", metadata: ["model_version": "\(version)", "error": "\(error)"])
                            summaries.append(ModelSummary(version: version, verified: false, active: version == active))
                        case .notFound:
                            continue  // pruned since the listing began
                        case .redis:
                            throw Problem.storeFailure("model registry", cause: error, metrics: metrics, logger: logger)
                        }
                    }
                }
                return try Response.json(["models": summaries])
            }
        }

        router.get("/v1/models/:version") { request, context in
            try await guarded(request, context, scopes: [.train, .admin]) { _ in
                let version = try Self.version(context)
                let active = try await registryCall { try await models.registry.activeVersion() }
                let artifact = try await registryCall { try await models.registry.load(version) }
                return try Response.json(ModelDetail(artifact: artifact, active: active == version))
            }
        }

        router.post("/v1/models") { request, context in
            try await guarded(request, context, scopes: [.train], charge: .training) { record, _ in
                try await train(request, context, trainedBy: record.id)
            }
        }

        router.post("/v1/models/:version/activate") { request, context in
            try await guarded(request, context, scopes: [.admin]) { _ in
                let version = try Self.version(context)
                try await registryCall { try await models.registry.activate(version) }
                await models.refresh()
                return try Response.json(["active_version": version])
            }
        }
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
        let stored = try await registryCall { try await models.registry.store(candidate) }
        // Compared with the active version as Redis has it, not with this replica's copy, which
        // may be a moment old.
        let active = try await registryCall { () async throws -> ModelArtifact? in
            guard let version = try await models.registry.activeVersion() else { return nil }
            return try await models.registry.load(version)
        }
        let verdict = configuration.activationGate.verdict(
            candidate: stored.metrics.referenceAccuracy, active: active?.metrics.referenceAccuracy)
        if verdict.activates {
            try await registryCall { try await models.registry.activate(stored.version) }
            await models.refresh()
        }
        do {
            let pruned = try await models.registry.prune(retention: configuration.modelRetention)
            if !pruned.isEmpty { logger.info("pruned model versions", metadata: ["versions": "\(pruned)"]) }
        } catch {
            logger.warning("could not prune model versions", metadata: ["error": "\(error)"])
        }
        struct Trained: Encodable {
            var model: ModelSummary
            var activated: Bool
            var reason: String
        }
        return try Response.json(
            Trained(
                model: ModelSummary(stored, active: verdict.activates ? stored.version : active?.version),
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
    private func registryCall<T>(_ call: () async throws -> T) async throws(Problem) -> T {
        do {
            return try await call()
        } catch {
            guard let error = error as? ModelError else { throw Problem.unavailable("The model registry failed; retry shortly.") }
            switch error {
            case .notFound(let version): throw Problem.notFound("Model version \(version) does not exist.")
            case .tampered, .malformed:
                metrics.process.refusedArtifacts.increment()
                logger.error("refused model artifact", metadata: ["error": "\(error)"])
                throw Problem.conflict("\(error).")
            case .redis:
                throw Problem.storeFailure("model registry", cause: error, metrics: metrics, logger: logger)
            }
        }
    }
}

/// A model as listed: what it is and how good, without its weights.
struct ModelSummary: Encodable {
    var version: Int
    var verified: Bool
    var active: Bool
    var created_at: Date?
    var trained_by: String?
    var training_data_sha256: String?
    var metrics: ModelArtifact.Metrics?

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

struct ModelDetail: Encodable {
    var artifact: ModelArtifact
    var active: Bool
}
