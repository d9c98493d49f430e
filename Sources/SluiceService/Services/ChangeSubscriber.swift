import Logging
import ServiceLifecycle
import SluiceAuth
import SluiceLimiter
import SluiceModel
import SluiceRedis

/// Key and tenant changes and model activations reach this replica at once over Redis pub/sub: a changed
/// key's cached record and local-denial bounds are dropped, an activation is loaded. After a
/// reconnect (messages may have been missed) every cached record is dropped. The key cache's
/// lifetime and the model poll are the fallback if a message is lost.
struct ChangeSubscriber: Service {
    let redis: RedisConfiguration
    let authenticator: KeyAuthenticator
    let tenants: TenantDirectory
    let localDenial: LocalDenial?
    let models: ModelHolder
    let logger: Logger

    func run() async {
        let (authenticator, tenants, localDenial, models) = (authenticator, tenants, localDenial, models)
        let subscriber = RedisSubscriber(
            configuration: redis,
            channels: [KeyStore.invalidationChannel, TenantStore.changeChannel, ModelRegistry.activationChannel],
            logger: logger,
            onReconnect: {
                authenticator.invalidateAll()
                tenants.invalidateAll()
                localDenial?.invalidateAll()
            },
            onMessage: { channel, message in
                if channel == KeyStore.invalidationChannel {
                    let id = String(decoding: message, as: UTF8.self)
                    authenticator.invalidate(id)
                    localDenial?.invalidate(id)
                } else if channel == TenantStore.changeChannel {
                    let id = String(decoding: message, as: UTF8.self)
                    tenants.invalidate(id)
                    localDenial?.invalidate(TenantRecord.limiterKey(id))
                } else {
                    Task { await models.refresh() }
                }
            }
        )
        // Until the service group shuts down (or is cancelled).
        try? await gracefulShutdown()
        subscriber.close()
    }
}
