import Foundation

/// Certificates made by `openssl` for TLS tests: a CA, a server certificate it signed for
/// `localhost` and 127.0.0.1 (and one for `other.example` only), a client certificate, and a
/// second CA with a client certificate of its own.
public struct TLSFiles: Sendable {
    /// What a TLS `redis-server` is started with.
    public struct Server: Sendable {
        public let certificate: String
        public let key: String
        public let ca: String
        public var requireClientCertificates = false
    }

    public let directory: String
    public var ca: String { "\(directory)/ca.crt" }
    public var otherCA: String { "\(directory)/other-ca.crt" }
    public var clientCertificate: String { "\(directory)/client.crt" }
    public var clientKey: String { "\(directory)/client.key" }
    /// A client certificate signed by the second CA (``otherCA``), for rotations from one CA to another.
    public var otherClientCertificate: String { "\(directory)/other-client.crt" }
    public var otherClientKey: String { "\(directory)/other-client.key" }
    /// For 127.0.0.1 and localhost.
    public var server: Server { Server(certificate: "\(directory)/server.crt", key: "\(directory)/server.key", ca: ca) }
    /// For `other.example` only: right CA, wrong name.
    public var misnamedServer: Server { Server(certificate: "\(directory)/misnamed.crt", key: "\(directory)/misnamed.key", ca: ca) }

    public init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-tls-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let script = """
            set -e
            cd '\(directory)'
            ec() { openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$1.key" "${@:2}"; }
            ec ca -x509 -days 2 -subj /CN=sluice-test-ca -out ca.crt 2>/dev/null
            ec other-ca -x509 -days 2 -subj /CN=sluice-other-ca -out other-ca.crt 2>/dev/null
            sign() {  # name subject SANs [issuer]
              ec "$1" -subj "$2" -out "$1.csr" 2>/dev/null
              printf 'subjectAltName=%s\\nextendedKeyUsage=serverAuth,clientAuth\\n' "$3" >"$1.ext"
              issuer=${4:-ca}
              openssl x509 -req -in "$1.csr" -CA $issuer.crt -CAkey $issuer.key -CAcreateserial -days 2 -extfile "$1.ext" -out "$1.crt" 2>/dev/null
            }
            sign server /CN=localhost DNS:localhost,IP:127.0.0.1
            sign misnamed /CN=other.example DNS:other.example
            sign client /CN=sluice-client DNS:sluice-client
            sign other-client /CN=sluice-other-client DNS:sluice-other-client other-ca
            chmod 644 *.key
            """
        let (status, output) = try runCommand(["/bin/bash", "-c", script])
        guard status == 0 else { throw TestSupportError("openssl failed: \(output)") }
    }
}
