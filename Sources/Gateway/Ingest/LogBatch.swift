import Foundation
import NIOCore
import Sinks
import Support

/// A decoded osquery body that carries agent output: what the ingest step turns into records.
///
/// Each record carries the node's identity and primary platform (from its enrollment) and the time
/// the request arrived; its JSON is the agent's own bytes, so sinks write what was sent.
protocol LogBatch: Sendable {
    /// The body's records, as sent by `node` in a request received at `receivedAt`.
    func records(for node: NodeRecord, receivedAt: Date) -> [LogRecord]
}

extension LoggerRequest: LogBatch {
    /// One `result` or `status` record per `data` item, its JSON the item's bytes.
    func records(for node: NodeRecord, receivedAt: Date) -> [LogRecord] {
        let platform = OsqueryPlatform.primary(platformType: node.platformType)
        return items.map { item in
            LogRecord(
                kind: kind, nodeID: node.id, hostIdentifier: node.hostIdentifier, secretName: node.secretName,
                queryName: item.name, platform: platform, isSnapshot: item.isSnapshot, severity: item.severity,
                receivedAt: receivedAt, json: item.json)
        }
    }
}

extension DistributedWriteRequest: LogBatch {
    /// One `distributed` record per query id:
    /// `{"name":<id>,"hostIdentifier":…,"unixTime":…,"status":…,"message":…,"stats":…,"rows":[…]}`,
    /// with the agent's own JSON for every value (ids missing from a map get `0`, `""`, `{}` or `[]`).
    func records(for node: NodeRecord, receivedAt: Date) -> [LogRecord] {
        let host = JSONString.quoted(node.hostIdentifier)
        let time = Int(receivedAt.timeIntervalSince1970)
        let platform = OsqueryPlatform.primary(platformType: node.platformType)
        return results.map { result in
            var json = ByteBuffer()
            json.writeString("{\"name\":\(JSONString.quoted(result.id)),\"hostIdentifier\":\(host),\"unixTime\":\(time),\"status\":")
            json.writeImmutableBuffer(result.status ?? ByteBuffer(string: "0"))
            json.writeString(",\"message\":")
            json.writeImmutableBuffer(result.message ?? ByteBuffer(string: "\"\""))
            json.writeString(",\"stats\":")
            json.writeImmutableBuffer(result.stats ?? ByteBuffer(string: "{}"))
            json.writeString(",\"rows\":")
            json.writeImmutableBuffer(result.rows ?? ByteBuffer(string: "[]"))
            json.writeString("}")
            return LogRecord(
                kind: .distributed, nodeID: node.id, hostIdentifier: node.hostIdentifier, secretName: node.secretName,
                queryName: result.id, platform: platform, receivedAt: receivedAt, json: json)
        }
    }
}
