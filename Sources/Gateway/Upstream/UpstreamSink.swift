import Crypto
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import Sinks
import Support

/// The `upstream` sink: logs re-posted to the backend in osquery's own bodies, per node, with that
/// node's backend key (docs/upstream.md#logs).
///
/// Agents are acknowledged once their batch is in the spool, exactly as without a backend; this
/// sink then delivers from the spool at its own pace, like any sink, so a backend outage costs the
/// agents nothing and loses nothing. A batch is split by node and log type, in order, into
/// `{"node_key": <backend key>, "log_type": "result"|"status", "data": [...]}` bodies (each item the
/// agent's own bytes), and `distributed` records a synchronous pass-through could not deliver into
/// distributed write bodies. Outcomes:
/// - every body answered: delivered;
/// - the backend unavailable (down, timeout, 5xx, garbage, a 2xx/3xx `error` body): retry with the
///   workers' backoff; bodies already answered during this batch's earlier attempts are not sent again;
/// - the backend's `node_invalid` for a node's key: that node's records go to the dead-letter file
///   with the reason, the node is revoked (it re-enrolls), and the rest is delivered
///   (`partlyRejected`); a 4xx `error` body and a node with no backend key are dead-lettered the same way.
final class UpstreamSink: Sink {
    struct Configuration: Sendable {
        var name: String
        var batching = Batching(maxRecords: 1_000, maxBytes: 4 << 20, maxWait: .seconds(1))
    }

    let configuration: Configuration
    private let nodes: UpstreamNodes
    /// Groups the backend answered while the current batch is being retried, with what it refused
    /// of them (batch positions and why): a retry reads the same batch from the same cursor, so the
    /// positions still hold, and those records are dead-lettered without posting the group again.
    private let answered = NIOLockedValueBox([SHA256Digest: [Refusal]]())

    private struct Refusal: Sendable {
        var indices: [Int]
        var reason: String
    }

    var name: String { configuration.name }
    var batching: Batching { configuration.batching }

    init(configuration: Configuration, nodes: UpstreamNodes) {
        self.configuration = configuration
        self.nodes = nodes
    }

    /// Records of one node and log type, in batch order, and the endpoint they go to.
    struct Group {
        var nodeID: String
        var kind: LogKind
        var indices: [Int]
    }

    func deliver(_ batch: [LogRecord]) async -> DeliveryOutcome {
        var refused: [Int] = []
        var reasons: [String] = []
        var groupRefusals: [Refusal] = []
        func refuse(_ indices: [Int], _ reason: String) {
            guard !indices.isEmpty else { return }
            refused += indices
            groupRefusals.append(Refusal(indices: indices, reason: reason))
            if !reasons.contains(reason) { reasons.append(reason) }
        }
        for group in Self.groups(batch) {
            let digest = Self.digest(group, batch)
            if let earlier = answered.withLockedValue({ $0[digest] }) {
                for refusal in earlier { refuse(refusal.indices, refusal.reason) }
                continue
            }
            groupRefusals = []
            let node: NodeRecord?
            do {
                node = try await nodes.store.node(id: group.nodeID)
            } catch {
                return .retry(reason: "node store unavailable: \(error)", after: nil)
            }
            guard let node else {
                refuse(group.indices, "node \(group.nodeID) is not in the node store")
                continue
            }
            guard let key = nodes.backendKey(of: node) else {
                refuse(group.indices, "node \(group.nodeID) has no upstream backend key (enrolled before the gateway fronted the backend)")
                continue
            }
            let bodies = Self.bodies(group, batch, nodeKey: key)
            refuse(bodies.unreadable, "not a distributed result record")
            for body in bodies.posts {
                switch await nodes.upstream.client.post(body.call, body: UpstreamBody(body.buffer), nodeKey: key) {
                case .answered(let reply) where !reply.hasError:
                    continue
                case .answered(let reply) where (400..<500).contains(reply.status):
                    refuse(body.indices, "the upstream backend refused the records: HTTP \(reply.status): \(String(buffer: reply.body).prefix(200))")
                case .answered(let reply):
                    return .retry(reason: "the upstream backend answered with an error body (HTTP \(reply.status))", after: nil)
                case .nodeInvalid:
                    refuse(body.indices, "the upstream backend answered node_invalid for node \(node.id)'s key")
                    await nodes.revoke(node, during: "log delivery")
                case .unavailable(let reason):
                    return .retry(reason: "upstream backend unavailable: \(reason)", after: nil)
                }
            }
            let outcome = groupRefusals
            answered.withLockedValue { $0[digest] = outcome }
        }
        answered.withLockedValue { $0.removeAll() }
        guard !refused.isEmpty else { return .delivered }
        return .partlyRejected(indices: refused, reason: reasons.joined(separator: "; "))
    }

    /// The batch split by node and log type, each group in batch order, groups in order of first
    /// appearance. Distributed records the backend already has (`passedThrough`) are left out.
    static func groups(_ batch: [LogRecord]) -> [Group] {
        var groups: [Group] = []
        var index: [String: Int] = [:]
        for (i, record) in batch.enumerated() where !(record.kind == .distributed && record.passedThrough) {
            let key = record.kind.rawValue + "\u{0}" + record.nodeID
            if let at = index[key] {
                groups[at].indices.append(i)
            } else {
                index[key] = groups.count
                groups.append(Group(nodeID: record.nodeID, kind: record.kind, indices: [i]))
            }
        }
        return groups
    }

    /// Identifies a group's content (node, type, each record's arrival and bytes).
    static func digest(_ group: Group, _ batch: [LogRecord]) -> SHA256Digest {
        var hasher = SHA256()
        hasher.update(data: Array((group.kind.rawValue + "\u{0}" + group.nodeID + "\u{0}").utf8))
        for i in group.indices {
            var millis = Int64((batch[i].receivedAt.timeIntervalSince1970 * 1000).rounded()).littleEndian
            withUnsafeBytes(of: &millis) { hasher.update(bufferPointer: $0) }
            batch[i].json.withUnsafeReadableBytes { hasher.update(bufferPointer: $0) }
        }
        return hasher.finalize()
    }
}
