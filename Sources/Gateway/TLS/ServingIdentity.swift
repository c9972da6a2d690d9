import NIOConcurrencyHelpers
import NIOCore
import NIOSSL

/// The server certificate chain and private key handed to each new TLS handshake, replaceable while
/// the gateway runs (SIGHUP), as nginx reloads certificates: connections already open keep theirs,
/// the next handshake gets the new pair. BoringSSL asks for it once per ClientHello through
/// `sslContextCallback`, which may override only the chain and key; the client CA and the
/// client-certificate mode are fixed for the process.
final class ServingIdentity: Sendable {
    private let current: NIOLockedValueBox<NIOSSLContextConfigurationOverride>

    /// Loads the pair; the caller has checked that it matches (`TLSMaterial.check`).
    init(certificate: String, privateKey: String) throws {
        current = NIOLockedValueBox(try Self.load(certificate: certificate, privateKey: privateKey))
    }

    func install(into configuration: inout TLSConfiguration) {
        let current = self.current
        configuration.sslContextCallback = { _, promise in promise.succeed(current.withLockedValue { $0 }) }
    }

    /// Serves a new pair from the next handshake on. Blocking file reads: call off the event loops.
    /// - Throws: when a file cannot be read; the pair being served stays.
    func reload(certificate: String, privateKey: String) throws {
        let loaded = try Self.load(certificate: certificate, privateKey: privateKey)
        current.withLockedValue { $0 = loaded }
    }

    private static func load(certificate: String, privateKey: String) throws -> NIOSSLContextConfigurationOverride {
        var override = NIOSSLContextConfigurationOverride()
        override.certificateChain = try NIOSSLCertificate.fromPEMFile(certificate).map { .certificate($0) }
        override.privateKey = .privateKey(try NIOSSLPrivateKey(file: privateKey, format: .pem))
        return override
    }
}
