import Logging
import Metrics

/// Nodes as the backend knows them: each one's backend key, and revocation when the backend
/// refuses it (docs/upstream.md#revocation).
///
/// When the backend answers `node_invalid` for a node's key (config, distributed read or write,
/// carve, or the upstream sink re-posting its logs), the node is revoked here too: its next request
/// gets `node_invalid` from the gateway, the agent enrolls again, through the gateway, and gets a
/// fresh key from both. Revocation only applies to the enrollment it was decided for (the store
/// compares the key hash), so a host that has just enrolled again is not thrown out by a late answer.
struct UpstreamNodes: Sendable {
    let upstream: Upstream
    let store: any NodeStore
    let authenticator: NodeAuthenticator
    private let revocations = Counter(label: "upstream_revoked_nodes")

    init(upstream: Upstream, store: any NodeStore, authenticator: NodeAuthenticator) {
        self.upstream = upstream
        self.store = store
        self.authenticator = authenticator
    }

    /// `node`'s backend key in plaintext; nil when it has none (enrolled before the gateway fronted
    /// a backend, or by a certificate alone) or it cannot be unsealed (another `upstream.key`).
    func backendKey(of node: NodeRecord) -> String? {
        guard let sealed = node.upstreamKey else { return nil }
        do {
            return try upstream.sealer.unseal(sealed)
        } catch {
            upstream.logger.error("cannot unseal a node's backend key (was upstream.key replaced?)", metadata: [
                "gw.node_id": "\(node.id)", "gw.error": "\(error)",
            ])
            return nil
        }
    }

    /// Revokes `node` because the backend refused its key while doing `what`. A store failure is
    /// logged: the agent is told `node_invalid` anyway, because that is the backend's answer.
    func revoke(_ node: NodeRecord, during what: String) async {
        do {
            try await authenticator.revoke(node)
            revocations.increment()
            upstream.logger.notice("node revoked: the upstream backend refused its key", metadata: [
                "gw.node_id": "\(node.id)", "gw.host_identifier": "\(node.hostIdentifier)", "gw.request": "\(what)",
            ])
        } catch {
            upstream.logger.error("cannot record a revocation the upstream backend asked for", metadata: [
                "gw.node_id": "\(node.id)", "gw.error": "\(error)",
            ])
        }
    }
}
