import Logging
import NIOCore
import Support

/// Distributed queries and carves, passed through to the backend while the agent waits
/// (docs/upstream.md#pass-through).
///
/// The agent's body goes on with the gateway's node key replaced by the node's backend key; the
/// backend's answer comes back byte for byte. A backend `node_invalid` revokes the node and the agent
/// is told `node_invalid`. When the backend cannot answer, each endpoint degrades the way osquery
/// copes best: a read gets no queries, a write is kept for later (the caller spools it), a carve gets
/// an error body (osquery retries the block, then gives the carve up).
struct UpstreamPassThrough: Sendable {
    let nodes: UpstreamNodes
    private var client: UpstreamClient { nodes.upstream.client }

    init(nodes: UpstreamNodes) {
        self.nodes = nodes
    }

    /// What became of a distributed write.
    enum WriteOutcome: Sendable {
        /// The backend answered; its body goes back to the agent, and the results are spooled as
        /// passed through (the local sinks get them, the upstream sink does not send them again).
        case answered(ByteBuffer)
        /// Not delivered (backend down, or the node has no backend key): the results are spooled
        /// and the upstream sink delivers them later; the agent gets `{}` once they are durable.
        case later
    }

    /// The backend's answer to a distributed read.
    struct ReadAnswer: Sendable {
        /// What the agent gets when the gateway has no queries of its own to add: the backend's
        /// bytes as sent, or `{"queries":{}}` while it cannot be asked.
        var body: ByteBuffer
        /// The backend answered with an `error` member or a status that is not 2xx: osquery would
        /// take none of the answer, so the gateway's own queries must not be merged into it.
        var hasError = false
    }

    /// The backend's answer to a distributed read: the queries it has for `node`, or none while it
    /// cannot be asked.
    /// - Throws: `OsqueryError.nodeInvalid` when the backend refused the node's key.
    func distributedRead(_ node: NodeRecord, body: ByteBuffer, origin: AgentOrigin) async throws -> ReadAnswer {
        guard let key = nodes.backendKey(of: node) else { return ReadAnswer(body: Self.noQueries) }
        let forwarded = try Self.withNodeKey(key, body, what: "request")
        switch await client.post(.distributedRead, body: forwarded, nodeKey: key, origin: origin) {
        case .answered(let reply): return ReadAnswer(body: reply.body, hasError: reply.hasError)
        case .nodeInvalid:
            await nodes.revoke(node, during: "distributed read")
            throw OsqueryError.nodeInvalid("node key revoked by the upstream backend")
        case .unavailable(let reason):
            nodes.upstream.logger.debug("upstream backend unavailable for a distributed read", metadata: ["gw.reason": "\(reason)"])
            return ReadAnswer(body: Self.noQueries)
        }
    }

    /// Passes a distributed write on.
    /// - Throws: `OsqueryError.nodeInvalid` when the backend refused the node's key: the agent keeps
    ///   its results and sends them again after enrolling, so they are not spooled now.
    func distributedWrite(_ node: NodeRecord, body: ByteBuffer, origin: AgentOrigin) async throws -> WriteOutcome {
        guard let key = nodes.backendKey(of: node) else { return .later }
        let forwarded = try Self.withNodeKey(key, body, what: "distributed write")
        switch await client.post(.distributedWrite, body: forwarded, nodeKey: key, origin: origin) {
        case .answered(let reply) where !reply.hasError: return .answered(reply.body)
        case .answered(let reply):
            nodes.upstream.logger.warning("upstream backend answered a distributed write with an error; spooled for later", metadata: ["gw.status": "\(reply.status)"])
            return .later
        case .nodeInvalid:
            await nodes.revoke(node, during: "distributed write")
            throw OsqueryError.nodeInvalid("node key revoked by the upstream backend")
        case .unavailable(let reason):
            nodes.upstream.logger.info("upstream backend unavailable for a distributed write; spooled for later", metadata: ["gw.reason": "\(reason)"])
            return .later
        }
    }

    /// Passes a carve start (`node` known) or block on; `node` is nil for a block that came without
    /// `Authorization: NodeKey` (blocks carry no key in the body; the backend knows them by `session_id`).
    /// - Throws: `OsqueryError.unavailable` while the backend cannot answer (osquery retries) or when
    ///   the node has no backend key, `.nodeInvalid` when the backend refused the node's key.
    func carve(_ call: UpstreamClient.Call, _ node: NodeRecord?, body: ByteBuffer, origin: AgentOrigin) async throws -> ByteBuffer {
        var key: String?
        var forwarded = UpstreamBody(body)
        if let node {
            guard let backendKey = nodes.backendKey(of: node) else {
                throw OsqueryError.unavailable("this node has no upstream backend key; carving goes through the backend")
            }
            key = backendKey
            if call == .carveStart { forwarded = try Self.withNodeKey(backendKey, body, what: "carve") }
        }
        switch await client.post(call, body: forwarded, nodeKey: key, origin: origin) {
        case .answered(let reply): return reply.body
        case .nodeInvalid:
            if let node { await nodes.revoke(node, during: "carve") }
            throw OsqueryError.nodeInvalid("node key refused by the upstream backend")
        case .unavailable(let reason):
            nodes.upstream.logger.warning("upstream backend unavailable for a carve", metadata: ["gw.reason": "\(reason)"])
            throw OsqueryError.unavailable("upstream backend unavailable; retry the carve later")
        }
    }

    /// `body` with its `node_key` replaced by `key`.
    private static func withNodeKey(_ key: String, _ body: ByteBuffer, what: String) throws -> UpstreamBody {
        guard body.readableBytes > 0 else { return .nodeKey(key) }
        do throws(JSONError) {
            return try UpstreamBody.replacing("node_key", with: JSONString.quoted(key), in: body)
        } catch {
            throw OsqueryBodyError(what, error)
        }
    }

    static let noQueries = ByteBuffer(string: "{\"queries\":{}}")
}
