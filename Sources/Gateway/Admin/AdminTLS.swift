import NIOSSL

/// HTTPS on the admin listener (`admin.tls`), and with `client_ca`, client certificates as admin
/// credentials beside the bearer token.
///
/// The protocol rules are the agent listener's (`AgentTLS`: TLS 1.2 with ECDHE and AES-GCM, or
/// 1.3), so one set is audited. Client certificates are optional at the handshake, so a caller with
/// only the token still connects; but a certificate that is presented must chain to `client_ca`, or
/// the handshake fails. Every certificate `client_ca` verifies is an operator unless `client_names`
/// narrows it: keep that CA apart from the one that signs agent certificates.
enum AdminTLS {
    /// The `admin.tls` section.
    struct Configuration: Sendable, Equatable {
        var certificate: String
        var privateKey: String
        /// Verifies client certificates, which then authenticate admin calls; nil: token only.
        var clientCA: String?
        /// Globs over a client certificate's subject, common name and DNS names (`PeerCertificate.names`);
        /// empty: every certificate `clientCA` verifies.
        var clientNames: [String] = []

        /// The same files as the agent listener's `tls` section would hold them.
        var asAgentTLS: AgentTLS.Configuration {
            AgentTLS.Configuration(
                certificate: certificate, privateKey: privateKey, clientCA: clientCA,
                clientCertificates: clientCA == nil ? .none : .optional)
        }
    }

    /// The server side of the admin listener's TLS.
    /// - Throws: when a file cannot be read (checked before by `checkServable`).
    static func serverConfiguration(_ tls: Configuration) throws -> TLSConfiguration {
        let agentTLS = tls.asAgentTLS
        return try AgentTLS.serverConfiguration(
            agentTLS, identity: try ServingIdentity(certificate: agentTLS.certificate, privateKey: agentTLS.privateKey))
    }
}

extension AdminTLS.Configuration {
    /// `admin.tls`: `certificate`, `private_key` (required, PEM), `client_ca` (client certificates
    /// it verifies become admin credentials), `client_names` (a glob or a list of them over the
    /// certificate's subject, common name and DNS names; needs `client_ca`).
    init?(reading section: MappingReader) {
        let certificate = section.requiredString("certificate")
        let privateKey = section.requiredString("private_key")
        let clientCA = section.configPath("client_ca")
        let names = section.strings("client_names")
        if !names.isEmpty && clientCA == nil {
            section.reader.report(section.key("client_names"), section.value("client_names"), "needs admin.tls.client_ca")
        }
        guard let certificate, let privateKey else { return nil }
        self.init(
            certificate: section.reader.inConfigDir(certificate), privateKey: section.reader.inConfigDir(privateKey),
            clientCA: clientCA, clientNames: names)
    }
}
