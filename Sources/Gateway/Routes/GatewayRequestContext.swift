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
    /// The listener takes a PROXY protocol header (`listen.proxy_protocol`): the connection's peer
    /// is the balancer, and the agent's address is the one the header named.
    var proxyProtocol = false

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
    }

    /// Bodies are collected by `RequestBodyReader` with per-endpoint limits.
    var maxUploadSize: Int { .max }

    /// The agent's IP address: the connection's peer, or behind a balancer that sends the PROXY
    /// protocol the source its header named (the peer when it named none, as for the balancer's own
    /// connections).
    ///
    /// Behind a balancer this costs one hop to the connection's event loop, where the decoder keeps it.
    func agentAddress() async -> String? {
        guard proxyProtocol else { return channel.remoteAddress?.ipAddress }
        let channel = channel
        let proxied = try? await channel.eventLoop.submit { () throws -> String? in
            try channel.pipeline.syncOperations.handler(type: ProxyProtocolDecoder.self).source?.ipAddress
        }.get()
        return proxied ?? channel.remoteAddress?.ipAddress
    }

    /// The verified client certificate of this connection, if one was presented.
    ///
    /// Costs one hop to the connection's event loop, so it is read only when certificates are in use.
    func peerCertificate() async throws -> PeerCertificate? {
        guard let certificate = try await channel.nioSSL_peerCertificate().get() else { return nil }
        return try PeerCertificate(certificate)
    }
}
