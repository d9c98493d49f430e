import Logging
import Synchronization

/// The verified model a process serves (replicas) or runs jobs with (workers).
///
/// ``refresh()`` runs every 250 ms, so an activation reaches every process within a second. A
/// version that fails verification is refused, logged and reported, and the previous model keeps
/// serving; nothing is ever run from an unverified artifact.
public final class ModelHolder: Sendable {
    /// What the holder reports to its owner's metrics.
    public enum Event: Sendable {
        case loaded(version: Int)
        case refused(version: Int)
        case redisError
    }

    public let registry: ModelRegistry
    private let logger: Logger
    private let onEvent: @Sendable (Event) -> Void
    private let state = Mutex<(model: ModelArtifact?, refused: Int?)>((nil, nil))

    public init(registry: ModelRegistry, logger: Logger, onEvent: @escaping @Sendable (Event) -> Void = { _ in }) {
        self.registry = registry
        self.logger = logger
        self.onEvent = onEvent
    }

    public var current: ModelArtifact? { state.withLock { $0.model } }

    /// Loads the active version if it differs from the one served.
    public func refresh() async {
        do {
            guard let active = try await registry.activeVersion() else { return }
            let (served, refused) = state.withLock { ($0.model?.version, $0.refused) }
            guard active != served, active != refused else { return }
            let model = try await registry.load(active)
            // A pub/sub notice and the poll can refresh at once: only the first to swap reports.
            let swapped = state.withLock { state -> Bool in
                guard state.model?.version != model.version else { return false }
                state = (model, nil)
                return true
            }
            guard swapped else { return }
            onEvent(.loaded(version: model.version))
            logger.info("serving model", metadata: ["model_version": "\(model.version)"])
        } catch {
            if case .tampered(let version) = error { refuse(version, error) }
            if case .malformed(let version) = error { refuse(version, error) }
            if case .redis = error { onEvent(.redisError) }
        }
    }

    private func refuse(_ version: Int, _ error: ModelError) {
        let first = state.withLock { state -> Bool in
            defer { state.refused = version }
            return state.refused != version
        }
        guard first else { return }
        onEvent(.refused(version: version))
        logger.error(
            "refused model artifact; the previous model keeps serving",
            metadata: ["model_version": "\(version)", "error": "\(error)", "serving": "\(current?.version.description ?? "none")"])
    }

    /// Refreshes until cancelled.
    public func run() async {
        while !Task.isCancelled {
            await refresh()
            try? await Task.sleep(for: .milliseconds(250))
        }
    }
}
