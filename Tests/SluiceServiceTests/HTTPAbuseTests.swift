import Foundation
import SluiceTestSupport
import Testing

/// The HTTP layer of a replica against malformed and hostile requests, byte by byte.
@Suite("HTTP-level abuse", .serialized)
struct HTTPAbuseTests {
    /// Sends `request` on a new connection; the answer and whether the replica closed the connection.
    static func exchange(_ port: Int, _ request: String) throws -> (text: String, closed: Bool) {
        let connection = try RawConnection(port: port)
        connection.send(request)
        return connection.receive(timeout: 2)
    }

    /// The status of every response in `text`, in order (no body here holds a status line).
    static func statuses(_ text: String) -> [String] {
        text.matches(of: /HTTP\/1\.[01] (\d{3})\s/).map { String($0.1) }
    }

    @Test func oversizedOrMalformedHeadsAreRefusedAndTheConnectionClosed() async throws {
        let cluster = try await Cluster()
        let port = cluster.replicas[0].port
        let big = try Self.exchange(port, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: \(String(repeating: "a", count: 17 * 1024))\r\n\r\n")
        #expect(Self.statuses(big.text) == ["431"] && big.closed && big.text.contains("application/problem+json"), "\(big.text.prefix(200))")
        let many = (0..<101).map { "X-H\($0): v\r\n" }.joined()
        let crowded = try Self.exchange(port, "GET /healthz HTTP/1.1\r\nHost: x\r\n\(many)\r\n")
        #expect(Self.statuses(crowded.text) == ["431"] && crowded.closed)
        let fits = try Self.exchange(port, "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Fits: \(String(repeating: "a", count: 12 * 1024))\r\n\r\n")
        #expect(Self.statuses(fits.text) == ["200"])

        let noHost = try Self.exchange(port, "GET /healthz HTTP/1.1\r\n\r\n")
        #expect(Self.statuses(noHost.text) == ["400"] && noHost.closed, "\(noHost.text)")
        let twoHosts = try Self.exchange(port, "GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
        #expect(Self.statuses(twoHosts.text) == ["400"] && twoHosts.closed)
        let gzip = try Self.exchange(port, "POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Encoding: gzip\r\nContent-Length: 2\r\n\r\n{}")
        #expect(Self.statuses(gzip.text) == ["415"] && gzip.closed, "\(gzip.text)")
        let expect = try Self.exchange(port, "POST /v1/predict HTTP/1.1\r\nHost: x\r\nExpect: 200-ok\r\nContent-Length: 2\r\n\r\n{}")
        #expect(Self.statuses(expect.text) == ["417"] && expect.closed, "\(expect.text)")
        let http10 = try Self.exchange(port, "GET /healthz HTTP/1.0\r\n\r\n")
        #expect(http10.text.hasPrefix("HTTP/1.0 200") || http10.text.hasPrefix("HTTP/1.1 200"), "HTTP/1.0 needs no Host: \(http10.text)")
        #expect(http10.closed, "HTTP/1.0 without keep-alive is closed after its answer")
    }

    /// Field names are case-insensitive: the guard's checks hold in any case, and an `identity`
    /// encoding or a `100-continue` expectation (in any case) is no reason to refuse.
    @Test func theGuardsChecksHoldWhateverTheCaseOfTheNames() async throws {
        let cluster = try await Cluster()
        let port = cluster.replicas[0].port
        let twoHosts = try Self.exchange(port, "GET /healthz HTTP/1.1\r\nHOST: a\r\nhost: b\r\n\r\n")
        #expect(Self.statuses(twoHosts.text) == ["400"] && twoHosts.closed, "\(twoHosts.text)")
        let gzip = try Self.exchange(
            port, "POST /v1/predict HTTP/1.1\r\nHost: x\r\nCONTENT-ENCODING: Identity\r\ncontent-Encoding: GZIP\r\nContent-Length: 2\r\n\r\n{}")
        #expect(Self.statuses(gzip.text) == ["415"] && gzip.closed, "\(gzip.text)")
        let expect = try Self.exchange(port, "POST /v1/predict HTTP/1.1\r\nHost: x\r\nEXPECT: 200-ok\r\nContent-Length: 2\r\n\r\n{}")
        #expect(Self.statuses(expect.text) == ["417"] && expect.closed, "\(expect.text)")
        // Accepted fields: the request reaches authentication (401), and the connection stays open.
        let fine = try Self.exchange(
            port, "POST /v1/predict HTTP/1.1\r\nhOsT: x\r\nContent-ENCODING: IDENTITY\r\nexpect: 100-Continue\r\nContent-Length: 2\r\n\r\n{}")
        #expect(Self.statuses(fine.text).last == "401" && !fine.closed, "\(fine.text)")
    }

    @Test func aClientHangingUpMidBodyIsLoggedAsCancelledNotTooLarge() async throws {
        let cluster = try await Cluster()
        let key = try await cluster.createKey(scopes: ["predict"]).key
        try RedisServer.sendAndHangUp(
            port: cluster.replicas[0].port,
            "POST /v1/predict HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(key)\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"features\":",
            after: 0.3)
        try waitUntil(timeout: 5) { cluster.replicas[0].log.contains("status=499") }
        #expect(!cluster.replicas[0].log.contains("status=413"))
    }

    @Test func smugglingNeverYieldsTwoRequestsAndPipeliningKeepsOrder() async throws {
        let cluster = try await Cluster()
        let port = cluster.replicas[0].port
        let smuggled = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
        for head in [
            "POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            "POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 45\r\n\r\n",
            "POST /healthz HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n b\r\nContent-Length: 0\r\n\r\n",
            "POST /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n",
        ] {
            let answer = try Self.exchange(port, head + smuggled)
            #expect(Self.statuses(answer.text) == ["400"] && answer.closed, "\(head.debugDescription): \(answer.text.prefix(300))")
        }
        let pipelined = try Self.exchange(port, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /nope HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        #expect(Self.statuses(pipelined.text) == ["200", "404", "200"], "\(pipelined.text)")
    }

    @Test func methodsAPathDoesNotTakeAre405WithAllowAndHeadMirrorsGet() async throws {
        let cluster = try await Cluster()
        let port = cluster.replicas[0].port
        let put = try Self.exchange(port, "PUT /v1/keys HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
        #expect(Self.statuses(put.text) == ["405"] && put.text.contains("application/problem+json"), "\(put.text)")
        #expect(put.text.contains("\r\nAllow: GET, HEAD, POST\r\n") || put.text.contains("\r\nallow: GET, HEAD, POST\r\n"), "\(put.text)")
        let patch = try Self.exchange(port, "PATCH /v1/keys/abc/rotate HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
        #expect(Self.statuses(patch.text) == ["405"] && patch.text.lowercased().contains("\r\nallow: post\r\n"), "\(patch.text)")
        let options = try Self.exchange(port, "OPTIONS /v1/predict HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        #expect(Self.statuses(options.text) == ["204"] && options.text.lowercased().contains("\r\nallow: post\r\n"), "\(options.text)")
        let nowhere = try Self.exchange(port, "DELETE /nowhere HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        #expect(Self.statuses(nowhere.text) == ["404"] && nowhere.text.contains("/problems/not-found"), "\(nowhere.text)")

        let head = try Self.exchange(port, "HEAD /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        let get = try Self.exchange(port, "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        #expect(Self.statuses(head.text) == ["200"] && head.text.hasSuffix("\r\n\r\n"), "HEAD has no body: \(head.text)")
        #expect(head.text.lowercased().contains("content-length: \(get.text.split(separator: "\r\n\r\n", maxSplits: 1).last?.utf8.count ?? -1)"),
                "HEAD announces GET's length: \(head.text) vs \(get.text)")
        let anonymousHead = try Self.exchange(port, "HEAD /v1/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        #expect(Self.statuses(anonymousHead.text) == ["401"], "HEAD is guarded like GET: \(anonymousHead.text)")
    }

    @Test func anAnonymousCallerIsRefusedBeforeItsBodyIsRead() async throws {
        let cluster = try await Cluster()
        // The body never comes: a replica that read it first would wait for it (the read timeout).
        let answer = try Self.exchange(
            cluster.replicas[0].port,
            "POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 60000\r\n\r\n{\"features\":")
        #expect(Self.statuses(answer.text) == ["401"], "\(answer.text)")
    }
}
