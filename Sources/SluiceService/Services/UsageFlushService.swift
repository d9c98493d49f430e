import Logging
import ServiceLifecycle
import SluiceLimiter
import SluiceRedis

/// Writes the replica's own usage counts (``UsageMeter``) every second, and once more when the
/// replica stops; while Redis fails they wait, and are written once it answers.
struct UsageFlushService: Service {
    let usage: UsageMeter
    let redis: any RedisCommands
    let logger: Logger

    func run() async {
        await cancelWhenGracefulShutdown { [self] in
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(1))
                await usage.flush(to: redis)
            }
        }
        await usage.flush(to: redis)
    }
}
