/// Where a request came from, as far as the gateway can vouch for it: the connection's verified
/// client certificate, the peer's address and the agent's `User-Agent`.
///
/// Only what the gateway saw itself, never headers that claim an identity: an upstream backend
/// hears of the agent through these (`UpstreamIdentity`), so a spoofed `X-Client-Cert-*` or
/// `X-Forwarded-For` from an agent never reaches it.
struct AgentOrigin: Sendable {
    var certificate: PeerCertificate?
    /// The peer's IP address (`SocketAddress.ipAddress`), if the connection has one.
    var address: String?
    var userAgent: String?

    init(certificate: PeerCertificate? = nil, address: String? = nil, userAgent: String? = nil) {
        self.certificate = certificate
        self.address = address
        self.userAgent = userAgent
    }
}

/// What to make of a node key the store does not know.
///
/// Without one, such a key is invalid (`node_invalid`). In front of an upstream backend the
/// backend is asked once, and a key it accepts becomes a node of this gateway
/// (`UpstreamKeyLearner`), so agents enrolled there before the gateway existed keep working.
protocol UnknownNodeKeys: Sendable {
    /// The node for `nodeKey` (whose hash is `keyHash`), stored once found.
    /// - Throws: `OsqueryError.nodeInvalid` when the key is definitely unknown,
    ///   `OsqueryError.unavailable` when that cannot be decided now (never `nodeInvalid` then).
    func resolve(nodeKey: String, keyHash: [UInt8], origin: AgentOrigin) async throws -> NodeRecord
}
