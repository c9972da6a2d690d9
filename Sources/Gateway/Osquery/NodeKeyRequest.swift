import Foundation
import HTTPTypes
import NIOCore

/// The body of config and distributed read requests: `{"node_key": "..."}` (other keys ignored).
struct NodeKeyRequest: Sendable {
    var nodeKey: String?

    /// - Throws: `OsqueryError.badRequest` for malformed JSON or a non-string `node_key`.
    init(body: ByteBuffer) throws {
        guard body.readableBytes > 0 else { return }
        do {
            nodeKey = try body.scanJSON { (scanner) throws(JSONError) -> String? in
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
        } catch {
            throw OsqueryError.badRequest("invalid request body: \(error)")
        }
    }
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
