public import NIOSSL

/// The TLS rules every outbound connection of the gateway follows, HTTP or not (an HTTP endpoint, a
/// syslog receiver): TLS 1.2 or later, trust pinned to `ca` when one is given (the system store
/// otherwise), and an optional client certificate.
public enum OutboundTLS {
    /// A client configuration for those rules.
    /// - Parameters:
    ///   - ca: PEM bundle the server's certificate must chain to; nil: the system's trust store.
    ///   - clientCertificate: the certificate chain and key to present, if the server asks for one.
    /// - Throws: when the CA, certificate or key file cannot be read.
    public static func configuration(ca: String?, clientCertificate: HTTPEndpoint.ClientCertificate?) throws -> TLSConfiguration {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.minimumTLSVersion = .tlsv12
        if let ca { tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(ca)) }
        if let clientCertificate {
            tls.certificateChain = try NIOSSLCertificate.fromPEMFile(clientCertificate.certificate).map { .certificate($0) }
            tls.privateKey = .privateKey(try NIOSSLPrivateKey(file: clientCertificate.privateKey, format: .pem))
        }
        return tls
    }
}
