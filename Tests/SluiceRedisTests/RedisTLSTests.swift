import Foundation
import Logging
import SluiceRedis
import SluiceTestSupport
import Testing

/// `rediss://` against a real `redis-server` listening on a TLS port only, with certificates made
/// by `openssl`: what connects, and what is refused with a reason and without the password.
@Suite("Redis over TLS", .serialized)
struct RedisTLSTests {
    static let password = "tls-test-password-never-printed"
    let files: TLSFiles

    init() throws { files = try TLSFiles() }

    private func configuration(_ server: RedisServer, _ tls: RedisTLS, password: String? = Self.password) throws -> RedisConfiguration {
        var configuration = try RedisConfiguration(url: server.url, password: password)
        configuration.tls = tls
        configuration.commandTimeout = .seconds(1)
        configuration.connections = 1
        return configuration
    }

    /// The error a first command meets, and how long it took.
    private func failure(_ configuration: RedisConfiguration) async -> (error: RedisError?, after: Duration) {
        let client = RedisClient(configuration: configuration, logger: Logger(label: "test"))
        defer { client.shutdown() }
        let started = ContinuousClock.now
        do {
            _ = try await client.send("PING")
            return (nil, ContinuousClock.now - started)
        } catch {
            return (error, ContinuousClock.now - started)
        }
    }

    @Test func connectsAuthenticatesAndVerifiesTheIPAddress() async throws {
        let server = try RedisServer(arguments: ["--requirepass", Self.password], tls: files.server)
        #expect(server.url.hasPrefix("rediss://127.0.0.1:"))
        let configuration = try configuration(server, RedisTLS(caFile: files.ca))
        #expect(configuration.description.contains("over TLS"))
        try configuration.validate()
        let client = RedisClient(configuration: configuration, logger: Logger(label: "test"))
        defer { client.shutdown() }
        try await client.ping()
        _ = try await client.send("SET", "tls:k", "through TLS")
        #expect(try await client.send("GET", "tls:k").string == "through TLS")
        // Pipelining is unchanged over TLS: 500 concurrent commands, far fewer round trips.
        let before = client.roundTrips
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<500 { group.addTask { _ = try await client.send("INCR", "tls:n") } }
            try await group.waitForAll()
        }
        #expect(try await client.send("GET", "tls:n").int == 500)
        #expect(client.roundTrips - before < 250, "\(client.roundTrips - before) round trips for 500 commands")
    }

    @Test func anUntrustedCertificateIsRefusedClearlyAndWithoutARetryStorm() async throws {
        let server = try RedisServer(arguments: ["--requirepass", Self.password], tls: files.server)
        let untrusting = try configuration(server, RedisTLS(caFile: files.otherCA))
        let (error, after) = await failure(untrusting)
        guard case .tlsFailed(let endpoint, let reason) = error else { Issue.record("expected a TLS failure, got \(String(describing: error))"); return }
        #expect(endpoint == "127.0.0.1:\(server.port)")
        #expect(reason.uppercased().contains("CERTIFICATE_VERIFY_FAILED") || reason.lowercased().contains("certificate"), "\(reason)")
        #expect(!"\(error!)".contains(Self.password))
        #expect(after < .milliseconds(900), "refused at once, not after the command timeout: \(after)")
        // Callers keep failing fast, and the client does not hammer the server meanwhile.
        let client = RedisClient(configuration: untrusting, logger: Logger(label: "test"))
        defer { client.shutdown() }
        let deadline = ContinuousClock.now + .seconds(2)
        var attempts = 0
        while ContinuousClock.now < deadline {
            attempts += 1
            _ = try? await client.send("PING")
            try await Task.sleep(for: .milliseconds(20))
        }
        let observer = RedisClient(configuration: try configuration(server, RedisTLS(caFile: files.ca)), logger: Logger(label: "test"))
        defer { observer.shutdown() }
        let stats = try await observer.send("INFO", "stats").string ?? ""
        let connections = Int(stats.firstMatch(of: /total_connections_received:(\d+)/).map { String($0.1) } ?? "") ?? 0
        #expect(attempts > 50)
        #expect(connections <= 5, "\(connections) connections for \(attempts) commands over 2 s")
    }

    @Test func theHostNameMustMatchTheCertificate() async throws {
        let server = try RedisServer(arguments: ["--requirepass", Self.password], tls: files.misnamedServer)
        // 127.0.0.1 is not among the certificate's names.
        let (byAddress, _) = await failure(try configuration(server, RedisTLS(caFile: files.ca)))
        guard case .tlsFailed(_, let reason) = byAddress else { Issue.record("got \(String(describing: byAddress))"); return }
        #expect(!reason.isEmpty && !reason.contains(Self.password))
        let (wrongName, _) = await failure(try configuration(server, RedisTLS(caFile: files.ca, serverName: "wrong.example")))
        guard case .tlsFailed = wrongName else { Issue.record("got \(String(describing: wrongName))"); return }
        // The name the certificate does carry, given as SLUICE_REDIS_TLS_SERVER_NAME would.
        let (none, _) = await failure(try configuration(server, RedisTLS(caFile: files.ca, serverName: "other.example")))
        #expect(none == nil)
    }

    @Test func plaintextAndTLSPortsMismatchedFailWithinTheConnectTimeout() async throws {
        let tlsServer = try RedisServer(arguments: ["--requirepass", Self.password], tls: files.server)
        var plaintext = try configuration(tlsServer, RedisTLS(caFile: files.ca))
        plaintext.tls = nil
        let (toTLSPort, after) = await failure(plaintext)
        #expect(toTLSPort != nil, "a plaintext client cannot talk to a TLS port")
        #expect(after < .milliseconds(1500), "\(after)")
        #expect(!"\(String(describing: toTLSPort))".contains(Self.password))

        let plainServer = try RedisServer(arguments: ["--requirepass", Self.password])
        var tls = try RedisConfiguration(url: "rediss://127.0.0.1:\(plainServer.port)", password: Self.password)
        tls.tls = RedisTLS(caFile: files.ca)
        tls.connections = 1
        // The connect timeout (1 s) must end the attempt before the command's own deadline does.
        tls.commandTimeout = .seconds(2)
        let (toPlainPort, tlsAfter) = await failure(tls)
        guard case .tlsFailed = toPlainPort else { Issue.record("got \(String(describing: toPlainPort))"); return }
        #expect(tlsAfter < .milliseconds(1500), "\(tlsAfter)")
    }

    @Test func mutualTLS() async throws {
        var required = files.server
        required.requireClientCertificates = true
        let server = try RedisServer(arguments: ["--requirepass", Self.password], tls: required)
        let (anonymous, _) = await failure(try configuration(server, RedisTLS(caFile: files.ca)))
        #expect(anonymous != nil, "a client without a certificate is refused")
        #expect(!"\(String(describing: anonymous))".contains(Self.password))
        let withCertificate = try configuration(
            server, RedisTLS(caFile: files.ca, certificateFile: files.clientCertificate, keyFile: files.clientKey))
        let (none, _) = await failure(withCertificate)
        #expect(none == nil)
    }

    @Test func pubSubOverTLS() async throws {
        let server = try RedisServer(arguments: ["--requirepass", Self.password], tls: files.server)
        let configuration = try configuration(server, RedisTLS(caFile: files.ca))
        let received = Counter()
        let subscriber = RedisSubscriber(configuration: configuration, channels: ["tls-news"], logger: Logger(label: "test")) { _, message in
            if message == Array("hello".utf8) { received.increment() }
        }
        defer { subscriber.close() }
        let client = RedisClient(configuration: configuration, logger: Logger(label: "test"))
        defer { client.shutdown() }
        let deadline = ContinuousClock.now + .seconds(5)
        while received.value == 0, ContinuousClock.now < deadline {
            _ = try await client.send("PUBLISH", "tls-news", "hello")
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(received.value > 0, "a message published over TLS reached the TLS subscriber")
    }
}

/// A server that is not Redis: a Python process on loopback that answers the handshake, then
/// random bytes to the first real command, and properly on the next connection.
@Suite("Redis client against a corrupt reply stream")
struct CorruptReplyTests {
    static let server = #"""
        import os, socket, sys
        listener = socket.socket(); listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0)); listener.listen(8)
        print(listener.getsockname()[1], flush=True)
        for index in range(4):
            connection, _ = listener.accept()
            reads = 0
            while True:
                data = connection.recv(65536)
                if not data: break
                reads += 1
                if index == 0 and reads > 1:
                    connection.sendall(b"!" + os.urandom(200) + b"\r\n")  # no RESP reply starts with "!"
                else:
                    connection.sendall(b"+PONG\r\n" * data.count(b"PING"))
            connection.close()
        """#

    @Test func garbageDropsTheConnectionFailsItsCommandsAndTheNextOneReconnects() async throws {
        let process = try BackgroundCommand(["python3", "-c", Self.server])
        defer { process.terminate() }
        try waitUntil(timeout: 10) { process.log.contains("\n") }
        let port = try #require(Int(process.log.split(separator: "\n").first ?? ""))
        var configuration = RedisConfiguration(endpoint: .tcp(host: "127.0.0.1", port: port))
        configuration.connections = 1
        let client = RedisClient(configuration: configuration, logger: Logger(label: "test"))
        defer { client.shutdown() }
        do {
            _ = try await client.send("PING")
            Issue.record("random bytes must not pass for a reply")
        } catch {
            guard case .connectionLost(_, let reason) = error else { Issue.record("got \(error)"); return }
            #expect(reason.contains("protocol error"), "\(reason)")
        }
        #expect(try await client.send("PING") == .simpleString("PONG"), "the next command reconnects")
    }
}
