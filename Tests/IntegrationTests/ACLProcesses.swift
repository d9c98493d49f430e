import SluiceAuth
import SluiceTestSupport

/// A replica and a worker that reach Redis as their own ACL users (`sluice-replica`,
/// `sluice-worker`), as every shipped deployment runs them, with fresh secrets.
struct ACLProcesses {
    let adminKey = APIKey.generate().revealed
    let signingKey = Cluster.randomHex()
    let redisURL: String
    /// Where the users' password files are (from ``Repository/renderedACL()``).
    let passwords: String
    /// Added to both processes' environment.
    var environment: [String: String] = [:]

    func replica() async throws -> ServiceProcess {
        let replica = try ServiceProcess(redisURL: redisURL, environment: [
            "SLUICE_ADMIN_KEY": adminKey, "SLUICE_MODEL_SIGNING_KEY": signingKey,
            "REDIS_USERNAME": "sluice-replica", "REDIS_PASSWORD_FILE": "\(passwords)/sluice-replica",
        ].merging(environment) { $1 })
        try await replica.waitUntilReady()
        return replica
    }

    func worker() async throws -> ServiceProcess {
        let worker = try ServiceProcess("worker", redisURL: redisURL, environment: [
            "SLUICE_MODEL_SIGNING_KEY": signingKey, "REDIS_USERNAME": "sluice-worker", "REDIS_PASSWORD_FILE": "\(passwords)/sluice-worker",
        ].merging(environment) { $1 }, arguments: ["--visibility-timeout", "2"])
        try await worker.waitUntilHealthy()
        return worker
    }
}
