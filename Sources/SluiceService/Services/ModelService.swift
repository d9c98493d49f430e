import Logging
import ServiceLifecycle
import SluiceModel

/// Keeps the replica's ``ModelHolder`` serving the active version: makes sure a model is active
/// first (training version 1 on the very first start, one replica only, under a lock in Redis),
/// then follows activations (pub/sub through ``ChangeSubscriber``, a poll as the fallback).
struct ModelService: Service {
    let models: ModelHolder
    /// Names this replica as the bootstrap lock's holder.
    let owner: String
    let logger: Logger

    func run() async {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do {
                    let model = try LogisticRegression.bootstrapModel()
                    _ = try await models.registry.bootstrap(owner: owner) { model }
                    break
                } catch {
                    logger.warning("no active model yet; retrying", metadata: ["error": "\(error)"])
                    try? await Task.sleep(for: .seconds(1))
                }
            }
            await models.run()
        }
    }
}
