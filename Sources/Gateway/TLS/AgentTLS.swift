import NIOCore
import NIOSSL

/// TLS on the agent listener: the server certificate osquery checks, and whether and how agents
/// present client certificates.
enum AgentTLS {
    /// Whether and how clients present certificates.
    enum ClientCertificateMode: String, Sendable, CaseIterable {
        /// Never asked for.
        case none
        /// Verified against `client_ca` when presented; agents without one still connect.
        case optional
        /// The handshake fails without a certificate from `client_ca`.
        case required
    }

    /// The `tls` section (`AgentTLS+YAML.swift`).
    struct Configuration: Sendable, Equatable {
        var certificate: String
        var privateKey: String
        var clientCA: String?
        var clientCertificates: ClientCertificateMode
    }

    /// The server side of what osquery negotiates (docs/protocol.md#connections): TLS 1.2 with
    /// ECDHE and AES-GCM, or TLS 1.3; RSA or ECDSA certificates from PEM files; client certificates
    /// checked against `client_ca` only (never the system store) when the mode asks for them. The
    /// certificate and key come from `identity` at each handshake, so SIGHUP can replace them.
    static func serverConfiguration(_ tls: Configuration, identity: ServingIdentity) throws -> TLSConfiguration {
        let chain = try NIOSSLCertificate.fromPEMFile(tls.certificate).map { NIOSSLCertificateSource.certificate($0) }
        let key = try NIOSSLPrivateKey(file: tls.privateKey, format: .pem)
        var configuration = TLSConfiguration.makeServerConfiguration(certificateChain: chain, privateKey: .privateKey(key))
        configuration.minimumTLSVersion = .tlsv12
        configuration.maximumTLSVersion = .tlsv13
        // osquery's kTLSCiphers allows ECDH(E) with AES and excludes CBC and SHA-1 suites.
        configuration.cipherSuites = [
            "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
            "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384",
        ].joined(separator: ":")
        // A draining server should not wait NIOSSL's default 5 s for each client's close_notify.
        configuration.shutdownTimeout = .milliseconds(300)
        switch tls.clientCertificates {
        case .none:
            configuration.certificateVerification = .none
        case .optional, .required:
            guard let ca = tls.clientCA else { break }
            // trustRoots nil would mean the system store: always pin to the configured CA.
            configuration.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(ca))
            configuration.sendCANameList = true
            configuration.certificateVerification =
                tls.clientCertificates == .required ? .noHostnameVerification : .optionalVerification
        }
        identity.install(into: &configuration)
        return configuration
    }
}
