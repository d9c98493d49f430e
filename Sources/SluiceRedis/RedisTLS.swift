import NIOSSL

/// TLS to Redis (`rediss://`), through swift-nio-ssl.
///
/// Verification is always on: the server's chain must lead to the trusted CA and the certificate
/// must name the host (a DNS name from the URL or ``serverName``; an IP address in the URL is
/// checked against the certificate's IP SANs). There is deliberately no switch to turn it off: a
/// client that accepts any certificate hands the password to whoever answers.
public struct RedisTLS: Sendable, Equatable {
    /// PEM file of the CA(s) to trust; `nil` uses the system's trust store.
    public var caFile: String?
    /// PEM certificate (chain) and key presented to the server, for mutual TLS.
    public var certificateFile: String?
    public var keyFile: String?
    /// The name to verify (and send as SNI) instead of the URL's host.
    public var serverName: String?

    public init(caFile: String? = nil, certificateFile: String? = nil, keyFile: String? = nil, serverName: String? = nil) {
        self.caFile = caFile
        self.certificateFile = certificateFile
        self.keyFile = keyFile
        self.serverName = serverName
    }

    /// Reads the files once; errors name the file, never its content.
    func makeContext() throws(RedisError) -> NIOSSLContext {
        guard (certificateFile == nil) == (keyFile == nil) else {
            throw .invalidConfiguration("a TLS client certificate needs its key and a key its certificate (SLUICE_REDIS_TLS_CERT_FILE and SLUICE_REDIS_TLS_KEY_FILE)")
        }
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv12
        configuration.certificateVerification = .fullVerification
        do {
            if let caFile { configuration.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(caFile)) }
        } catch {
            throw .invalidConfiguration("cannot read the CA file \(caFile ?? ""): \(error)")
        }
        if let certificateFile, let keyFile {
            do {
                configuration.certificateChain = try NIOSSLCertificate.fromPEMFile(certificateFile).map { .certificate($0) }
            } catch {
                throw .invalidConfiguration("cannot read the client certificate \(certificateFile): \(error)")
            }
            do {
                configuration.privateKey = .privateKey(try NIOSSLPrivateKey(file: keyFile, format: .pem))
            } catch {
                throw .invalidConfiguration("cannot read the client key \(keyFile): \(error)")
            }
        }
        do {
            return try NIOSSLContext(configuration: configuration)
        } catch {
            throw .invalidConfiguration("TLS settings refused: \(error)")
        }
    }
}
