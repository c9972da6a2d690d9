import HTTPTypes
import Hummingbird
import NIOCore
import NIOSSL

/// Per-request state: Hummingbird's core storage, the connection (to read the client certificate),
/// the enroll secret taken off the URL by `SecretParameterMiddleware` and the node key taken off it
/// by `NodeAPIPath`.
struct GatewayRequestContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    let channel: any Channel
    /// The `tls_secret_always` URL parameter's value, if the agent sent one.
    var urlSecret: String?
    /// The node key of osquery's `--tls_node_api` URL form (`/<node_key>/config&node_key=<key>`),
    /// nil for an ordinary URL, `""` when the agent had no key.
    var urlNodeKey: String?
    /// The listener takes a PROXY protocol header (`listen.proxy_protocol`): the connection's peer
    /// is the balancer, and the agent's address is the one the header named.
    var proxyProtocol = false

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
    }

    /// Bodies are collected by `RequestBodyReader` with per-endpoint limits.
    var maxUploadSize: Int { .max }

    /// Whether the request came in osquery's node-API URL form (its config answer is then wrapped).
    var isNodeAPI: Bool { urlNodeKey != nil }

    /// The key a request carries outside its body: the 5.23 `Authorization: NodeKey` header (the
    /// agent's current key), else the node-API URL's; nil when neither has one.
    func nodeKey(outsideBodyOf request: Request) -> String? {
        if let header = request.headers.nodeKey { return header }
        if let urlNodeKey, !urlNodeKey.isEmpty { return urlNodeKey }
        return nil
    }

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
        try await channel.verifiedPeerCertificate()
    }
}
