import HTTPTypes
import Support

/// Who may call the admin API: the bearer token (`admin.token_file` / `admin.token_env`), a client
/// certificate verified by `admin.tls.client_ca` (narrowed by `admin.tls.client_names`), or either.
///
/// Either one suffices: a certificate operators carry in their TLS client (a browser, curl, the
/// CLI) needs no token file on their machine, and a token works where no certificate is issued.
struct AdminCredentials: Sendable {
    /// nil: no token is accepted.
    var token: AdminToken?
    /// Whether a certificate `admin.tls.client_ca` verified is a credential.
    var certificates = false
    /// Globs over the certificate's names (`PeerCertificate.names`); empty: every verified one.
    var certificateNames: [String] = []

    init(token: AdminToken?, tls: AdminTLS.Configuration? = nil) {
        self.token = token
        certificates = tls?.clientCA != nil
        certificateNames = tls?.clientNames ?? []
    }

    /// Whether the API is on at all (without any credential its routes answer 403).
    var enabled: Bool { token != nil || certificates }

    /// Whether an `Authorization` header value is the bearer token.
    func acceptsToken(_ authorization: String?) -> Bool {
        token?.accepts(authorization: authorization) == true
    }

    /// Why a call with no accepted token is refused, given the connection's verified certificate;
    /// nil when the certificate is an admin credential.
    func refusal(certificate: PeerCertificate?) -> AdminError? {
        guard enabled else {
            return AdminError(.forbidden, "the admin API is off: set admin.token_file, admin.token_env or admin.tls.client_ca")
        }
        guard certificates else { return AdminError(.unauthorized, "missing or wrong bearer token") }
        guard let certificate else {
            return AdminError(.unauthorized, "missing or wrong bearer token, and no admin client certificate")
        }
        if certificateNames.isEmpty { return nil }
        let names = certificate.names
        if certificateNames.contains(where: { pattern in names.contains { Glob.matches(pattern, $0) } }) { return nil }
        return AdminError(.forbidden, "client certificate \(certificate.commonName ?? certificate.subject) is not allowed by admin.tls.client_names")
    }
}
