import Foundation
import SluiceAuth
import SluiceTestSupport
import Testing

/// `sluice serve --tls-cert --tls-key`: HTTPS from the replica itself, certificates rotated
/// (when the files change, or at once on SIGHUP) without dropping open connections.
@Suite("HTTPS served by a replica", .serialized)
struct ServerTLSTests {
    /// A CA and two leaf certificates for 127.0.0.1 (common names `first` and `second`), made
    /// with openssl.
    static func certificates() throws -> String {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-tls-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let script = """
            set -e
            cd '\(directory)'
            openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=test-ca \
              -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign -keyout ca.key -out ca.crt 2>/dev/null
            printf 'subjectAltName=IP:127.0.0.1\\nextendedKeyUsage=serverAuth\\n' > leaf.ext
            for name in first second; do
              openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=$name -keyout $name.key -out $name.csr 2>/dev/null
              openssl x509 -req -in $name.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 -extfile leaf.ext -out $name.crt 2>/dev/null
            done
            cp first.crt tls.crt; cp first.key tls.key
            """
        let made = try runCommand(["/bin/bash", "-c", script])
        guard made.status == 0 else { throw TestSupportError("openssl: \(made.output)") }
        return directory
    }

    /// The common name of the certificate a new TLS handshake with the replica presents.
    static func servedName(port: Int, ca: String) throws -> String {
        let shown = try runCommand(["/bin/bash", "-c",
            "openssl s_client -connect 127.0.0.1:\(port) -CAfile '\(ca)' -verify_return_error </dev/null 2>/dev/null | openssl x509 -noout -subject"])
        return shown.output.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @Test func servesHTTPSAndRotatesCertificatesOnSIGHUP() async throws {
        let tls = try Self.certificates()
        // Files looked at once an hour: what follows is SIGHUP's doing.
        let cluster = try await Cluster(environment: ["SLUICE_SECRETS_POLL_INTERVAL": "3600"], replicaArguments: ["--tls-cert", "\(tls)/tls.crt", "--tls-key", "\(tls)/tls.key"], readyOverTLS: "\(tls)/ca.crt")
        let replica = cluster.replicas[0]
        let https = try runCommand(["curl", "-s", "--cacert", "\(tls)/ca.crt", "-o", "/dev/null", "-w", "%{http_code}", "https://127.0.0.1:\(replica.port)/healthz"])
        #expect(https.output == "200")
        let plain = try runCommand(["curl", "-s", "-m", "2", "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:\(replica.port)/healthz"])
        #expect(plain.output != "200", "plain HTTP is not served on a TLS port")
        #expect(try Self.servedName(port: replica.port, ca: "\(tls)/ca.crt").contains("CN = first"))

        // A keep-alive connection opened before the rotation: one request now, one after.
        let open = try BackgroundCommand(["/bin/bash", "-c", """
            ( printf 'GET /healthz HTTP/1.1\\r\\nHost: sluice\\r\\n\\r\\n'; sleep 3
              printf 'GET /healthz HTTP/1.1\\r\\nHost: sluice\\r\\nConnection: close\\r\\n\\r\\n'; sleep 2 ) |
              openssl s_client -connect 127.0.0.1:\(replica.port) -CAfile '\(tls)/ca.crt' -verify_return_error -quiet 2>&1
            """])
        try await Task.sleep(for: .milliseconds(1500))
        // Rotate: new files, then SIGHUP.
        _ = try runCommand(["/bin/bash", "-c", "cd '\(tls)' && cp second.crt tls.crt.new && cp second.key tls.key.new && mv tls.crt.new tls.crt && mv tls.key.new tls.key"])
        replica.send(signal: SIGHUP)
        try waitUntil(timeout: 5) { replica.log.contains("reloaded a secret") && replica.log.contains("SLUICE_TLS_CERT") }
        #expect(try Self.servedName(port: replica.port, ca: "\(tls)/ca.crt").contains("CN = second"), "new handshakes see the new certificate")

        _ = try open.wait(timeout: 15)
        let answers = open.log.components(separatedBy: "HTTP/1.1 200").count - 1
        #expect(answers == 2, "the connection opened before the rotation answered both requests:\n\(open.log)")
        #expect(open.log.contains("CN = first"), "and it kept the certificate it had")

        // A file that does not load leaves the current certificate in place.
        try "not a certificate".write(toFile: "\(tls)/tls.crt", atomically: true, encoding: .utf8)
        replica.send(signal: SIGHUP)
        try waitUntil(timeout: 5) { replica.log.contains("secret not reloaded; the one in use is kept") }
        #expect(try Self.servedName(port: replica.port, ca: "\(tls)/ca.crt").contains("CN = second"))
    }

    @Test func aCertificateWithoutItsKeyIsRefusedAtStart() throws {
        let tls = try Self.certificates()
        for arguments in [["--tls-cert", "\(tls)/tls.crt"], ["--tls-cert", "\(tls)/tls.crt", "--tls-key", "\(tls)/missing.key"]] {
            let run = try ServiceProcess.run(
                arguments: ["serve", "--port", "1", "--redis", RedisServer.sharedURL] + arguments,
                environment: ["SLUICE_ADMIN_KEY": APIKey.generate().revealed, "SLUICE_MODEL_SIGNING_KEY": Cluster.randomHex()])
            #expect(run.status == 78, "\(arguments): \(run.output)")
            #expect(run.output.contains("--tls-"), "\(run.output)")
        }
    }
}
