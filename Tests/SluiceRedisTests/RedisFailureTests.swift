import Foundation
import Logging
import SluiceRedis
import SluiceTestSupport
import Testing

/// Each test runs its own redis-server so that it can stop, restart or reconfigure it.
@Suite("Redis client failure handling")
struct RedisFailureTests {
    @Test func restartWhileIdleIsInvisible() async throws {
        let server = try RedisServer()
        let client = server.client()
        defer { client.shutdown() }
        #expect(try await client.send("PING") == .simpleString("PONG"))
        try server.restart()
        try await Task.sleep(for: .milliseconds(150))  // past the idle threshold for the staleness probe
        // Every connection of the pool was closed by the restart; none of that reaches the caller.
        for _ in 0..<4 { #expect(try await client.send("PING") == .simpleString("PONG")) }
    }

    @Test func restartUnderLoadFailsAtMostTheInFlightBatch() async throws {
        let server = try RedisServer()
        let client = server.client()
        defer { client.shutdown() }
        let callers = 16
        let failuresPerCaller = (0..<callers).map { _ in Counter() }
        let successesAfterRestart = Counter()
        let restarted = Counter()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for caller in 0..<callers {
                group.addTask {
                    let deadline = ContinuousClock.now + .seconds(3)
                    while ContinuousClock.now < deadline {
                        do {
                            _ = try await client.send("INCR", "n")
                            if restarted.value > 0 { successesAfterRestart.increment() }
                        } catch {
                            failuresPerCaller[caller].increment()
                        }
                    }
                }
            }
            group.addTask {
                try await Task.sleep(for: .milliseconds(500))
                try server.restart()
                restarted.increment()
            }
            try await group.waitForAll()
        }
        // A caller has one command in flight at a time: losing the in-flight batch costs each
        // caller at most one failure; everything queued behind it waits for the reconnect.
        for failures in failuresPerCaller { #expect(failures.value <= 1) }
        #expect(successesAfterRestart.value > 100)
    }

    @Test func redisDownFailsWithinTheCommandTimeoutThenRecovers() async throws {
        let server = try RedisServer()
        var configuration = server.configuration()
        configuration.commandTimeout = .milliseconds(300)
        let client = RedisClient(configuration: configuration, logger: Logger(label: "test"))
        defer { client.shutdown() }
        _ = try await client.send("PING")
        server.stop()
        let started = ContinuousClock.now
        do {
            _ = try await client.send("PING")
            _ = try await client.send("PING")
            Issue.record("PING with Redis down must fail")
        } catch {
            #expect(error.isUnavailable)
        }
        #expect(ContinuousClock.now - started < .milliseconds(1500))
        try server.start()
        try await Task.sleep(for: .milliseconds(300))
        #expect(try await client.send("PING") == .simpleString("PONG"))
    }

    /// A hung Redis (SIGSTOP: connections open, nothing answered): a command queued behind the
    /// hung batch fails at its own deadline, not after that batch's timeout plus a reconnect
    /// that hangs too (2× the timeout before the deadline timer).
    @Test func aHungRedisFailsEachCommandWithinItsOwnTimeout() async throws {
        let server = try RedisServer()
        defer { server.resume() }
        var configuration = server.configuration()
        configuration.commandTimeout = .milliseconds(500)
        configuration.connections = 1
        let client = RedisClient(configuration: configuration, logger: Logger(label: "test"))
        defer { client.shutdown() }
        _ = try await client.send("PING")
        server.pause()
        async let first: Duration = Self.timeToFail(client)
        try await Task.sleep(for: .milliseconds(20))
        let second = await Self.timeToFail(client)
        let firstWait = await first
        #expect(firstWait < .milliseconds(650), "in flight: \(firstWait)")
        #expect(second < .milliseconds(650), "queued behind the hung batch: \(second)")
        server.resume()
        try await Task.sleep(for: .milliseconds(100))
        #expect(try await client.send("PING") == .simpleString("PONG"))
    }

    static func timeToFail(_ client: RedisClient) async -> Duration {
        let started = ContinuousClock.now
        do {
            _ = try await client.send("PING")
            Issue.record("PING to a hung Redis must fail")
        } catch {
            #expect(error.isUnavailable, "\(error)")
        }
        return ContinuousClock.now - started
    }

    @Test func wrongPasswordIsNamedWithoutThePassword() async throws {
        let server = try RedisServer(arguments: ["--requirepass", "right-horse-battery-staple"])
        let wrong = server.client(password: "hunter2-wrong-password")
        defer { wrong.shutdown() }
        do {
            try await wrong.ping()
            Issue.record("a wrong password must be refused")
        } catch {
            guard case .authenticationFailed = error else { throw error }
            let message = error.description
            #expect(message.contains("refused authentication"))
            #expect(message.contains("WRONGPASS"))
            #expect(!message.contains("hunter2"))
            #expect(!message.contains("right-horse"))
        }
        let none = server.client()
        defer { none.shutdown() }
        await #expect(throws: RedisError.self) { try await none.ping() }
        let right = server.client(password: "right-horse-battery-staple")
        defer { right.shutdown() }
        try await right.ping()
    }

    @Test func aclUserAndPasswordFromURL() async throws {
        let server = try RedisServer(arguments: ["--user", "sluice", "on", ">s3cret%pw", "~*", "+@all"])
        let client = RedisClient(
            configuration: try RedisConfiguration(url: "redis://sluice:s3cret%25pw@127.0.0.1:\(server.port)/2"),
            logger: Logger(label: "test")
        )
        defer { client.shutdown() }
        _ = try await client.send("SET", "k", "v")
        #expect(try await client.send("ACL", "WHOAMI").string == "sluice")
        // The URL's /2 selected database 2.
        let other = RedisClient(
            configuration: server.configuration(password: "s3cret%pw", username: "sluice").with(connections: 1),
            logger: Logger(label: "test")
        )
        defer { other.shutdown() }
        _ = try await other.send("SELECT", "2")
        #expect(try await other.send("GET", "k").string == "v")
    }

    @Test func unixSocket() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-sock-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let server = try RedisServer(arguments: ["--unixsocket", "\(directory)/redis.sock", "--unixsocketperm", "700"])
        _ = server
        let client = RedisClient(configuration: try RedisConfiguration(url: "unix://\(directory)/redis.sock"), logger: Logger(label: "test"))
        defer { client.shutdown() }
        #expect(try await client.send("PING") == .simpleString("PONG"))
    }

    @Test func nothingListeningIsCannotConnect() async throws {
        let port = try RedisServer.freePort()
        var configuration = try RedisConfiguration(url: "redis://127.0.0.1:\(port)")
        configuration.commandTimeout = .milliseconds(200)
        let client = RedisClient(configuration: configuration, logger: Logger(label: "test"))
        defer { client.shutdown() }
        do {
            _ = try await client.send("PING")
            Issue.record("nothing listens there")
        } catch {
            guard case .cannotConnect(let endpoint, _) = error else { throw error }
            #expect(endpoint == "127.0.0.1:\(port)")
        }
    }
}
