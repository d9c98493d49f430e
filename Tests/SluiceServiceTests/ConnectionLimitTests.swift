import Foundation
import SluiceTestSupport
import Testing

/// `--read-timeout`, `--idle-timeout` and `--max-connections` against a real replica: slow and
/// silent clients are cut off, and too many connections never stop it from answering.
@Suite("Slow, idle and surplus connections", .serialized)
struct ConnectionLimitTests {
    static let head = "POST /v1/predict HTTP/1.1\r\nHost: sluice\r\nContent-Type: application/json\r\n"

    @Test func slowHeadersSlowBodiesAndSilenceAreCutOffWithinTheReadTimeout() async throws {
        let cluster = try await Cluster(replicaArguments: ["--read-timeout", "2", "--idle-timeout", "30"])
        let port = cluster.replicas[0].port

        // Headers at one byte a second: a 408 problem and the connection closed at ~2 s.
        let slowHeaders = try RawConnection(port: port)
        let started = Date()
        var answer = ""
        for byte in Self.head {
            guard slowHeaders.send(String(byte)) else { break }
            let (text, closed) = slowHeaders.receive(timeout: 1)
            answer += text
            if closed { break }
        }
        let cutAfter = Date().timeIntervalSince(started)
        #expect(cutAfter < 3.5, "slow headers cut after \(cutAfter) s")
        #expect(answer.hasPrefix("HTTP/1.1 408") && answer.contains("application/problem+json"), "\(answer)")

        // A whole header section, then a body at one byte a second.
        let slowBody = try RawConnection(port: port)
        slowBody.send(Self.head + "Authorization: Bearer sk_abcdefgh_x\r\nContent-Length: 100\r\n\r\n{")
        let bodyStarted = Date()
        var closed = false
        while !closed && Date().timeIntervalSince(bodyStarted) < 6 {
            closed = !slowBody.send(" ") || slowBody.receive(timeout: 1).closed
        }
        let bodyCut = Date().timeIntervalSince(bodyStarted)
        #expect(closed && bodyCut < 3.5, "slow body cut after \(bodyCut) s")

        // A connection that never sends a byte.
        let silent = try RawConnection(port: port)
        let silentFor = try #require(silent.secondsUntilClosed(timeout: 6), "a silent connection stays open")
        #expect(silentFor > 1.5 && silentFor < 3.5)

        // A request sent whole but slowly (0.5 s a piece, 1.5 s in all) is served.
        let patient = try RawConnection(port: port)
        for piece in ["GET /healthz HTTP/1.1\r\n", "Host: sluice\r\n", "\r\n"] {
            patient.send(piece)
            try await Task.sleep(for: .milliseconds(500))
        }
        #expect(patient.receive(timeout: 1).text.hasPrefix("HTTP/1.1 200"))
    }

    @Test func idleKeepAliveConnectionsCloseAfterTheIdleTimeout() async throws {
        let cluster = try await Cluster(replicaArguments: ["--read-timeout", "30", "--idle-timeout", "2"])
        let connection = try RawConnection(port: cluster.replicas[0].port)
        let sent = Date()
        connection.send("GET /healthz HTTP/1.1\r\nHost: sluice\r\n\r\n")
        #expect(connection.receive(timeout: 1).text.hasPrefix("HTTP/1.1 200"))
        #expect(connection.secondsUntilClosed(timeout: 6) != nil, "an idle connection stays open")
        let idleFor = Date().timeIntervalSince(sent)
        #expect(idleFor > 1.5 && idleFor < 3.5, "closed \(idleFor) s after its answer")
    }

    /// 2,000 keep-alive connections left idle after one request each: the replica's memory grows by
    /// a bounded amount, new clients are served meanwhile, and every idle connection is closed at
    /// the idle timeout (its descriptors come back).
    @Test func twoThousandIdleKeepAliveConnectionsStayBoundedAndClose() async throws {
        // The idle timeout must outlast opening all 2,000 (up to ~10 s on this machine under load).
        let cluster = try await Cluster(replicaArguments: ["--read-timeout", "30", "--idle-timeout", "15"])
        let replica = cluster.replicas[0]
        _ = try await HTTP.send("GET", "\(cluster.url)/healthz")
        let before = try #require(replica.footprint)
        var idle: [RawConnection] = []
        for index in 0..<2_000 {
            // From many loopback addresses, as many clients would come.
            let connection = try RawConnection(port: replica.port, source: "127.0.\(1 + index / 250).\(1 + index % 250)")
            connection.send("GET /healthz HTTP/1.1\r\nHost: sluice\r\n\r\n")
            #expect(connection.receive(timeout: 2, until: #"{"status":"ok"}"#).text.hasPrefix("HTTP/1.1 200"))
            idle.append(connection)
        }
        let loaded = try #require(replica.footprint)
        #expect(loaded.descriptors >= before.descriptors + 2_000)
        #expect(loaded.rssKB - before.rssKB < 64 * 1024, "2,000 idle connections cost \((loaded.rssKB - before.rssKB) / 1024) MiB")
        let started = ContinuousClock.now
        #expect(try await HTTP.send("GET", "\(cluster.url)/healthz", timeout: 2).status == 200)
        #expect(ContinuousClock.now - started < .seconds(1), "a new client is served at once")
        try await Task.sleep(for: .seconds(16))
        let after = try #require(replica.footprint)
        #expect(after.descriptors <= before.descriptors + 10, "idle connections closed: \(before.descriptors) → \(after.descriptors)")
        #expect(idle.prefix(20).allSatisfy { $0.secondsUntilClosed(timeout: 0.5) != nil })
    }

    @Test func pastTheCapNewConnectionsAreClosedAndTheReplicaKeepsAnswering() async throws {
        let cluster = try await Cluster(replicaArguments: ["--max-connections", "20", "--read-timeout", "30"])
        let port = cluster.replicas[0].port
        var held: [RawConnection] = []
        for _ in 0..<20 { held.append(try RawConnection(port: port)) }
        try await Task.sleep(for: .milliseconds(300))
        // Past the cap: accepted by the kernel, then closed at once without an answer.
        for _ in 0..<5 {
            let surplus = try RawConnection(port: port)
            surplus.send("GET /healthz HTTP/1.1\r\nHost: sluice\r\n\r\n")
            let (text, closed) = surplus.receive(timeout: 2)
            #expect(closed && text.isEmpty, "a connection past the cap was served: \(text)")
        }
        #expect(cluster.replicas[0].log.contains("connection limit reached"))
        // Free a few slots: new clients are served again.
        held.removeLast(3)
        try await Task.sleep(for: .milliseconds(200))
        let healthz = try await HTTP.send("GET", "\(cluster.url)/healthz", timeout: 2)
        #expect(healthz.status == 200)
        let (key, _) = try await cluster.createKey(scopes: ["metrics"])
        let metrics = try await HTTP.send("GET", "\(cluster.url)/metrics", headers: ["Authorization": "Bearer \(key)"]).text
        let refused = metrics.split(separator: "\n").first { $0.hasPrefix("sluice_http_connections_refused_total ") }
        #expect(refused.map { Double($0.split(separator: " ")[1]) ?? 0 } ?? 0 >= 5, "\(refused ?? "no metric")")
        _ = held
    }
}
