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

    /// The verified client certificate of this connection, if one was presented.
    ///
    /// Costs one hop to the connection's event loop, so it is read only when certificates are in use.
    func peerCertificate() async throws -> PeerCertificate? {
        try await channel.verifiedPeerCertificate()
    }
}
