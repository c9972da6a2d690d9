import Foundation
import HTTPTypes
import NIOCore

/// The body of config and distributed read requests: `{"node_key": "..."}` (other keys ignored).
struct NodeKeyRequest: Sendable, NodeKeyed {
    var nodeKey: String?

    /// - Throws: `OsqueryBodyError` for malformed JSON or a non-string `node_key`.
    init(body: ByteBuffer) throws(OsqueryBodyError) {
        guard body.readableBytes > 0 else { return }
        nodeKey = try body.scanOsqueryBody("request") { (scanner) throws(JSONError) -> String? in
            var found: String?
            try scanner.forEachMember { (scanner, key) throws(JSONError) in
                if key == "node_key", found == nil {
                    found = try scanner.readString(for: "node_key")
                } else {
                    try scanner.skipValue(depth: 1)
                }
            }
            try scanner.expectEnd()
            return found
        }
    }
}

/// A decoded request body that may carry the agent's `node_key`.
protocol NodeKeyed {
    var nodeKey: String? { get }
}

extension HTTPFields {
    /// The key from `Authorization: NodeKey <key>` (osquery 5.23+), if present.
    var nodeKey: String? {
        guard let value = self[.authorization] else { return nil }
        let parts = value.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "nodekey" else { return nil }
        let key = parts[1].trimmingCharacters(in: .whitespaces)
        return key.isEmpty ? nil : key
    }
}
