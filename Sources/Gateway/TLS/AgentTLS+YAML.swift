extension AgentTLS.Configuration {
    /// `tls`: `certificate`, `private_key` (required), `client_ca`, `client_certificates`
    /// (`none`, `optional`, `required`; `optional` by default once a `client_ca` is given).
    init?(reading section: MappingReader) {
        let certificate = section.requiredString("certificate")
        let privateKey = section.requiredString("private_key")
        let clientCA = section.configPath("client_ca")
        let mode = section.choice("client_certificates", AgentTLS.ClientCertificateMode.self) ?? (clientCA == nil ? .none : .optional)
        if mode != .none && clientCA == nil {
            section.reader.report(section.key("client_certificates"), section.value("client_certificates"), "\(mode.rawValue) needs tls.client_ca")
        }
        guard let certificate, let privateKey else { return nil }
        self.init(
            certificate: section.reader.inConfigDir(certificate), privateKey: section.reader.inConfigDir(privateKey),
            clientCA: clientCA, clientCertificates: mode)
    }
}
