import Foundation
import SluiceTestSupport
import Synchronization
import Testing

/// The HAProxy that `scripts/cluster up` runs (deploy/haproxy.cfg) against hostile clients.
@Suite("HAProxy against slow and hostile clients", .serialized)
struct LoadBalancerAbuseTests {
    // Plain HTTP: these attacks are on the HTTP layer, which the HTTPS frontend shares.
    let script: ClusterScript

    init() throws { script = try ClusterScript("sluice-lb-abuse", tls: false) }

    var lbPort: Int { script.lbPort }

    private func cluster(_ command: String) throws -> (status: Int32, output: String) { try script.run(command) }

    /// The replica's byte-level refusals (HTTPAbuseTests) hold through HAProxy too: oversized or
    /// crowded heads and smuggling attempts get one refusal and a closed connection, never a
    /// second request behind them; pipelined requests are answered in order. (HAProxy answers an
    /// oversized head itself, with 400 rather than 431. An obs-folded header is not here: HAProxy
    /// unfolds it before forwarding, as RFC 9112 §5.2 lets a proxy, so both sides agree on where
    /// each request ends and nothing is smuggled.)
    @Test func malformedAndSmuggledRequestsThroughHAProxy() async throws {
        let up = try cluster("up")
        defer { _ = try? cluster("down") }
        try #require(up.status == 0, "\(up.output.suffix(3000))")
        func exchange(_ request: String) throws -> (statuses: [String], closed: Bool, text: String) {
            let connection = try RawConnection(port: lbPort)
            connection.send(request)
            let (text, closed) = connection.receive(timeout: 2)
            return (text.matches(of: /HTTP\/1\.[01] (\d{3})\s/).map { String($0.1) }, closed, text)
        }
        let big = try exchange("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: \(String(repeating: "a", count: 17 * 1024))\r\n\r\n")
        #expect(["400", "431"].contains(big.statuses.first ?? "") && big.statuses.count == 1 && big.closed, "\(big.text.prefix(300))")
        let crowded = try exchange("GET /healthz HTTP/1.1\r\nHost: x\r\n" + (0..<101).map { "X-H\($0): v\r\n" }.joined() + "\r\n")
        #expect(["400", "431"].contains(crowded.statuses.first ?? "") && crowded.statuses.count == 1 && crowded.closed, "\(crowded.text.prefix(300))")
        let smuggled = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
        for head in [
            "POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            "POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 45\r\n\r\n",
            "POST /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n",
        ] {
            let answer = try exchange(head + smuggled)
            #expect(answer.statuses.count == 1 && answer.statuses != ["200"] && answer.closed, "\(head.debugDescription): \(answer.text.prefix(300))")
        }
        let pipelined = try exchange(
            "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /nope HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        #expect(pipelined.statuses == ["200", "404", "200"], "\(pipelined.text)")
        #expect(try exchange("GET /healthz HTTP/1.1\r\n\r\n").statuses == ["400"], "HTTP/1.1 without Host")
    }

    /// One client (127.0.0.2) tries to hold 9,000 slowloris connections, each trickling its
    /// headers a byte at a time and reconnecting when cut off; another client (127.0.0.1) must
    /// still get `/healthz` and a prediction answered within 1 s, all along. 9,000 is beyond
    /// HAProxy's `maxconn 8000`: only the per-address limit keeps room for the others.
    static let attack = 9000

    @Test func slowlorisFromOneAddressDoesNotStarveOthers() async throws {
        let up = try cluster("up")
        defer { _ = try? cluster("down") }
        try #require(up.status == 0, "\(up.output.suffix(3000))")
        let base = "http://127.0.0.1:\(lbPort)"
        let admin = try script.adminKey()
        let created = try await HTTP.json("POST", "\(base)/v1/keys", key: admin, #"{"name":"victim","scopes":["predict"]}"#)
        let key = try #require(created.json?["key"] as? String, "\(created.status) \(created.text)")
        let body = #"{"features":{"sepal_length":5.1,"sepal_width":3.5,"petal_length":1.4,"petal_width":0.2}}"#

        let attacker = Slowloris(port: lbPort, source: "127.0.0.2", connections: Self.attack, duration: 20)
        try waitUntil(timeout: 30) { attacker.attempts >= Self.attack }

        // 12 s of probes, each on a new connection (as a new client would come): beyond HAProxy's
        // 5 s header deadline, while the attacker keeps trying.
        let predict = "POST /v1/predict HTTP/1.1\r\nHost: sluice\r\nConnection: close\r\nAuthorization: Bearer \(key)\r\n"
            + "Content-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
        var slow: [String] = []
        for round in 0..<12 {
            for (name, request) in [("healthz", "GET /healthz HTTP/1.1\r\nHost: sluice\r\nConnection: close\r\n\r\n"), ("predict", predict)] {
                let started = Date()
                let answer: String
                do {
                    let connection = try RawConnection(port: lbPort, timeout: 1)
                    connection.send(request)
                    answer = connection.receive(timeout: 1).text
                } catch {
                    answer = "no connection (\(error))"
                }
                let took = Date().timeIntervalSince(started)
                if !answer.hasPrefix("HTTP/1.1 200") || took > 1 {
                    slow.append("round \(round) \(name): \(answer.prefix(100)) after \(took) s")
                }
            }
            try await Task.sleep(for: .seconds(1))
        }
        attacker.stop()
        #expect(slow.isEmpty, "other clients starved: \(slow)")
        #expect(attacker.attempts >= Self.attack)
        #expect(attacker.cutOff > 0, "HAProxy closed some of the attacker's connections")

        // A lone slow client is cut off at HAProxy's 5 s header deadline with a 408 (HAProxy 2.6
        // writes that one from its connection layer, in its own format).
        let lone = try RawConnection(port: lbPort, source: "127.0.0.3")
        let loneStarted = Date()
        lone.send("GET /healthz HTTP/1.1\r\nHost: x\r\n")
        let timedOut = lone.receive(timeout: 8)
        #expect(timedOut.closed && timedOut.text.hasPrefix("HTTP/1.1 408"), "\(timedOut.text)")
        #expect(Date().timeIntervalSince(loneStarted) < 7)

        // With every replica gone, HAProxy's own 503 is problem+json with Retry-After.
        for replica in 1...3 {
            kill(try script.pid("replica-\(replica)"), SIGKILL)
        }
        var unavailable: HTTP.Response?
        for _ in 0..<50 {
            unavailable = try? await HTTP.send("GET", "\(base)/healthz", timeout: 2)
            if unavailable?.status == 503 { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(unavailable?.status == 503)
        #expect(unavailable?.header("Content-Type") == "application/problem+json")
        #expect(unavailable?.header("Retry-After") == "1")
        #expect(unavailable?.json?["type"] as? String == "/problems/unavailable")
    }
}

/// A slowloris client on its own thread: `connections` connections from `source`, each sending a
/// request line one byte at a time, every connection cut off by the server replaced by a new one.
final class Slowloris: Sendable {
    private struct Counts { var attempts = 0, cutOff = 0, stop = false }
    private let counts = Mutex(Counts())

    init(port: Int, source: String, connections: Int, duration: Double) {
        let thread = Thread { [self] in
            let request = Array("GET /healthz HTTP/1.1\r\nHost: sluice\r\nX-Padding: \(String(repeating: "a", count: 200))\r\n")
            var open: [(RawConnection, Int)] = []
            let deadline = Date().addingTimeInterval(duration)
            while Date() < deadline, !self.counts.withLock({ $0.stop }) {
                // Top up to `connections`, spending at most a second on it per pass.
                let passEnd = Date().addingTimeInterval(1)
                while open.count < connections, Date() < passEnd {
                    self.counts.withLock { $0.attempts += 1 }
                    if let connection = try? RawConnection(port: port, source: source, timeout: 0.05) { open.append((connection, 0)) }
                }
                // One more byte on each; a closed one is dropped (and replaced next pass).
                var survivors: [(RawConnection, Int)] = []
                for (connection, sent) in open {
                    if !connection.peerClosed && connection.send(String(request[sent % request.count])) {
                        survivors.append((connection, sent + 1))
                    } else {
                        self.counts.withLock { $0.cutOff += 1 }
                    }
                }
                open = survivors
                Thread.sleep(forTimeInterval: 0.5)
            }
        }
        thread.start()
    }

    var attempts: Int { counts.withLock { $0.attempts } }
    var cutOff: Int { counts.withLock { $0.cutOff } }
    func stop() { counts.withLock { $0.stop = true } }
}
