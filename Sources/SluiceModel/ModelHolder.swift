import Logging
import SluiceModel
import Synchronization

/// The verified model this replica serves.
///
/// ``refresh()`` runs every 250 ms, so an activation reaches every replica within a second. A
/// version that fails verification is refused, logged and counted, and the previous model keeps
/// serving; nothing is ever served from an unverified artifact.
final class ModelHolder: Sendable {
    let registry: ModelRegistry
    private let metrics: ServiceMetrics
    private let logger: Logger
    private let state = Mutex<(model: ModelArtifact?, refused: Int?)>((nil, nil))

    init(registry: ModelRegistry, metrics: ServiceMetrics, logger: Logger) {
        self.registry = registry
        self.metrics = metrics
        self.logger = logger
    }

    var current: ModelArtifact? { state.withLock { $0.model } }

    /// Loads the active version if it differs from the one served.
    func refresh() async {
        do {
            guard let active = try await registry.activeVersion() else { return }
            let (served, refused) = state.withLock { ($0.model?.version, $0.refused) }
            guard active != served, active != refused else { return }
            let model = try await registry.load(active)
            state.withLock { $0 = (model, nil) }
            metrics.activeModelVersion.set(Double(model.version))
            logger.info("serving model", metadata: ["model_version": "\(model.version)"])
        } catch {
            if case .tampered(let version) = error { refuse(version, error) }
            if case .malformed(let version) = error { refuse(version, error) }
            if case .redis = error { metrics.redisErrors.increment() }
        }
    }

    private func refuse(_ version: Int, _ error: ModelError) {
        state.withLock { $0.refused = version }
        metrics.refusedArtifacts.increment()
        logger.error(
            "refused model artifact; the previous model keeps serving",
            metadata: ["model_version": "\(version)", "error": "\(error)", "serving": "\(current?.version.description ?? "none")"])
    }

    /// Refreshes until cancelled.
    func run() async {
        while !Task.isCancelled {
            await refresh()
            try? await Task.sleep(for: .milliseconds(250))
        }
    }
}
