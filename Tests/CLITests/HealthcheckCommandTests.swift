import Foundation
import SluiceAuth
import SluiceTestSupport
import Testing

/// `sluice healthcheck`, the container health check of the Dockerfile, compose and nothing else:
/// exit 0 only for a 200, and never hang on a server that does not answer.
@Suite("sluice healthcheck")
struct HealthcheckCommandTests {
    @Test func exitsZeroOnlyForA200AndNeverHangs() async throws {
        let redis = try RedisServer()
        let replica = try ServiceProcess(redisURL: redis.url, environment: [
            "SLUICE_ADMIN_KEY": APIKey.generate().revealed, "SLUICE_MODEL_SIGNING_KEY": Cluster.randomHex(),
        ])
        try await replica.waitUntilReady()
        let port = String(replica.port)
        #expect(try ServiceProcess.run(arguments: ["healthcheck", "--port", port], environment: [:]).status == 0)
        #expect(try ServiceProcess.run(arguments: ["healthcheck", "--port", port, "--path", "/healthz"], environment: [:]).status == 0)
        #expect(try ServiceProcess.run(arguments: ["healthcheck", "--port", port, "--path", "/metrics"], environment: [:]).status == 1, "401 is not healthy")
        #expect(try ServiceProcess.run(arguments: ["healthcheck"], environment: ["SLUICE_PORT": port]).status == 0, "SLUICE_PORT is the default port")

        // Redis gone: the replica is alive but not ready.
        redis.stop()
        try await Task.sleep(for: .milliseconds(700))
        #expect(try ServiceProcess.run(arguments: ["healthcheck", "--port", port], environment: [:]).status == 1)
        #expect(try ServiceProcess.run(arguments: ["healthcheck", "--port", port, "--path", "/healthz"], environment: [:]).status == 0)

        // Nothing listening, and a listener that never answers: 1, within the timeout.
        #expect(try ServiceProcess.run(arguments: ["healthcheck", "--port", String(try RedisServer.freePort())], environment: [:]).status == 1)
        let (silent, silentPort) = try Self.listenerThatNeverAnswers()
        defer { close(silent) }
        let started = ContinuousClock.now
        let hung = try ServiceProcess.run(arguments: ["healthcheck", "--port", String(silentPort), "--timeout", "1"], environment: [:])
        #expect(hung.status == 1)
        #expect(ContinuousClock.now - started < .seconds(5))
    }

    /// A loopback socket that listens but never accepts: the kernel completes connections, and
    /// nothing ever answers them.
    static func listenerThatNeverAnswers() throws -> (Int32, Int) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && listen(fd, 8) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard fd >= 0, bound else { throw TestSupportError("cannot listen") }
        return (fd, Int(UInt16(bigEndian: address.sin_port)))
    }
}
