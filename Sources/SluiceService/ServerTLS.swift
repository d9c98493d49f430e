import Foundation
import NIOSSL
import Synchronization

/// TLS for `sluice serve --tls-cert FILE --tls-key FILE`, for deployments without a proxy in
/// front (behind one, replicas speak plain HTTP on a private network).
///
/// ``reload()`` (on SIGHUP, or when either file changes) reads both files again: new handshakes use the new certificate,
/// connections already open keep theirs, so certificates rotate without a restart. Files that do
/// not load leave the current certificate in place.
public final class ServerTLS: Sendable {
    public let certificatePath: String
    public let keyPath: String
    private let context: Mutex<NIOSSLContext>

    /// Loads both files now: a deployment with a bad certificate refuses to start.
    public init(certificatePath: String, keyPath: String) throws {
        self.certificatePath = certificatePath
        self.keyPath = keyPath
        self.context = Mutex(try Self.makeContext(certificatePath: certificatePath, keyPath: keyPath))
    }

    /// The context for the next handshake.
    var current: NIOSSLContext { context.withLock { $0 } }

    public func reload() throws {
        let fresh = try Self.makeContext(certificatePath: certificatePath, keyPath: keyPath)
        context.withLock { $0 = fresh }
    }

    /// TLS 1.2 and 1.3 with BoringSSL's default (forward-secret, AEAD) cipher suites; HTTP/1.1.
    static func makeContext(certificatePath: String, keyPath: String) throws -> NIOSSLContext {
        let chain = try NIOSSLCertificate.fromPEMFile(certificatePath).map { NIOSSLCertificateSource.certificate($0) }
        guard !chain.isEmpty else { throw TLSFileError(path: certificatePath, reason: "holds no PEM certificate") }
        let key = try NIOSSLPrivateKey(file: keyPath, format: .pem)
        var configuration = TLSConfiguration.makeServerConfiguration(certificateChain: chain, privateKey: .privateKey(key))
        configuration.minimumTLSVersion = .tlsv12
        configuration.applicationProtocols = ["http/1.1"]
        return try NIOSSLContext(configuration: configuration)
    }
}

/// A certificate or key file that cannot be used.
struct TLSFileError: Error, CustomStringConvertible {
    var path: String
    var reason: String
    var description: String { "\(path) \(reason)" }
}
