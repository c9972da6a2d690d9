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

    /// One request body and the batch positions of the records in it.
    struct Post {
        var call: UpstreamClient.Call
        var buffer: ByteBuffer
        var indices: [Int]
    }

    /// The bodies for `group`: one logger body, or distributed write bodies (a new one whenever a
    /// query id comes again, so no body names an id twice); `unreadable` are distributed records
    /// whose JSON is not the gateway's own result record.
    static func bodies(_ group: Group, _ batch: [LogRecord], nodeKey: String) -> (posts: [Post], unreadable: [Int]) {
        if group.kind != .distributed {
            var body = ByteBuffer()
            body.reserveCapacity(group.indices.reduce(64) { $0 + batch[$1].json.readableBytes + 1 })
            body.writeString("{\"node_key\":\(JSONString.quoted(nodeKey)),\"log_type\":\"\(group.kind.rawValue)\",\"data\":[")
            for (n, i) in group.indices.enumerated() {
                if n > 0 { body.writeString(",") }
                body.writeImmutableBuffer(batch[i].json)
            }
            body.writeString("]}")
            return ([Post(call: .logger, buffer: body, indices: group.indices)], [])
        }
        var posts: [Post] = []
        var unreadable: [Int] = []
        var pending = DistributedWriteBody()
        for i in group.indices {
            guard let result = DistributedResult(batch[i].json) else {
                unreadable.append(i)
                continue
            }
            if pending.ids.contains(result.id) {
                posts.append(Post(call: .distributedWrite, buffer: pending.body(nodeKey: nodeKey), indices: pending.indices))
                pending = DistributedWriteBody()
            }
            pending.add(result, index: i)
        }
        if !pending.indices.isEmpty {
            posts.append(Post(call: .distributedWrite, buffer: pending.body(nodeKey: nodeKey), indices: pending.indices))
        }
        return (posts, unreadable)
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

/// One `distributed` record as the ingest step writes it
/// (`{"name","hostIdentifier","unixTime","status","message","stats","rows"}`), its values as raw JSON.
struct DistributedResult {
    var id: String
    var rows: ByteBuffer
    var status: ByteBuffer
    var message: ByteBuffer
    var stats: ByteBuffer

    init?(_ json: ByteBuffer) {
        var id: String?
        var values: [String: ByteBuffer] = [:]
        do throws(JSONError) {
            try json.scanJSON { (scanner) throws(JSONError) -> Void in
                try scanner.forEachMember { (scanner, key) throws(JSONError) in
                    let first = try scanner.peek()
                    switch key {
                    case "name" where first == UInt8(ascii: "\""):
                        id = try scanner.readString()
                    case "rows", "status", "message", "stats":
                        let range = try scanner.skipValue(depth: 1)
                        values[key] = json.getSlice(at: json.readerIndex + range.lowerBound, length: range.count)
                    default:
                        try scanner.skipValue(depth: 1)
                    }
                }
                try scanner.expectEnd()
            }
        } catch {
            return nil
        }
        guard let id else { return nil }
        self.id = id
        rows = values["rows"] ?? ByteBuffer(string: "[]")
        status = values["status"] ?? ByteBuffer(string: "0")
        message = values["message"] ?? ByteBuffer(string: "\"\"")
        stats = values["stats"] ?? ByteBuffer(string: "{}")
    }
}

/// A distributed write body being assembled from result records.
struct DistributedWriteBody {
    private(set) var ids = Set<String>()
    private(set) var indices: [Int] = []
    private var results: [DistributedResult] = []

    mutating func add(_ result: DistributedResult, index: Int) {
        ids.insert(result.id)
        indices.append(index)
        results.append(result)
    }

    /// `{"queries":{…},"statuses":{…},"messages":{…},"stats":{…},"node_key":…}`, as osquery sends it.
    func body(nodeKey: String) -> ByteBuffer {
        var body = ByteBuffer()
        func section(_ name: String, _ value: (DistributedResult) -> ByteBuffer) {
            body.writeString("\"\(name)\":{")
            for (n, result) in results.enumerated() {
                if n > 0 { body.writeString(",") }
                body.writeString(JSONString.quoted(result.id) + ":")
                body.writeImmutableBuffer(value(result))
            }
            body.writeString("},")
        }
        body.writeString("{")
        section("queries") { $0.rows }
        section("statuses") { $0.status }
        section("messages") { $0.message }
        section("stats") { $0.stats }
        body.writeString("\"node_key\":\(JSONString.quoted(nodeKey))}")
        return body
    }
}
