import NIOSSL
public import Support

/// The nats sink's TLS settings (`tls:` in the configuration, or a `tls://` URL).
///
/// NATS does not start TLS before its first byte as most protocols do: the server first sends its
/// `INFO` in plain text, saying `"tls_required":true` (or `"tls_available":true` when it also takes
/// plain connections); the client then runs the TLS handshake on the same connection and sends
/// `CONNECT` only through it (docs.nats.io, "Client Protocol" and "TLS"). With these settings the
/// sink insists on TLS and refuses a server that offers none, never falling back to plain text.
/// Without them it still upgrades when the server requires TLS, trusting the system's store.
/// Servers set to `handshake_first` (TLS before `INFO`) are not supported.
public struct NATSTLS: Sendable, Equatable {
    /// PEM bundle the server's certificate must chain to; nil: the system's trust store.
    public var ca: String?
    /// A certificate to present when the server verifies clients (`tls { verify: true }`).
    public var clientCertificate: HTTPEndpoint.ClientCertificate?
    /// The name sent as SNI and checked against the server's certificate; nil: the URL's host (an
    /// IP address is checked against the certificate's addresses, and no SNI is sent).
    public var serverName: String?

    public init(ca: String? = nil, clientCertificate: HTTPEndpoint.ClientCertificate? = nil, serverName: String? = nil) {
        self.ca = ca
        self.clientCertificate = clientCertificate
        self.serverName = serverName
    }

    /// The client context for these settings, on the rules of every outbound connection (`OutboundTLS`).
    /// - Throws: when the CA, certificate or key file cannot be read.
    func makeContext() throws -> NIOSSLContext {
        try NIOSSLContext(configuration: OutboundTLS.configuration(ca: ca, clientCertificate: clientCertificate))
    }
}
