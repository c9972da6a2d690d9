import Hummingbird
import NIOCore
import NIOSSL

/// Per-request state: Hummingbird's core storage, the connection (to read the client certificate)
/// and the enroll secret taken off the URL by `SecretParameterMiddleware`.
struct GatewayRequestContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    let channel: any Channel
    /// The `tls_secret_always` URL parameter's value, if the agent sent one.
    var urlSecret: String?

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
    }

    /// Bodies are collected by `RequestBodyReader` with per-endpoint limits.
    var maxUploadSize: Int { .max }

    /// The verified client certificate of this connection, if one was presented.
    ///
    /// Costs one hop to the connection's event loop, so it is read only when certificates are in use.
    func peerCertificate() async throws -> PeerCertificate? {
        guard let certificate = try await channel.nioSSL_peerCertificate().get() else { return nil }
        return try PeerCertificate(certificate)
    }
}
