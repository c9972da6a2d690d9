import Foundation
import NIOCore

/// What osquery concludes from a response body; the status never matters (docs/protocol.md#status-codes).
///
/// Bodies here are small (a config is tens of KB and comes once per start), so Foundation's parser is
/// cheap enough and only the top level is inspected, as osquery does.
enum Verdict {
    /// A JSON object without `error` or `"node_invalid": true` (an empty body counts as `{}`);
    /// for a distributed read, the ids of the queries it asks for.
    case accepted(queryIDs: [String])
    /// An enroll answer with a non-empty string `node_key` (or `id`, osquery's fallback).
    case enrolled(nodeKey: String)
    case failed(FailureKind)

    static func judge(_ body: ByteBuffer, endpoint: Endpoint) -> Verdict {
        guard body.readableBytes > 0 else {
            return endpoint == .enroll ? .failed(.noKey) : .accepted(queryIDs: [])
        }
        let parsed = try? JSONSerialization.jsonObject(with: Data(body.readableBytesView))
        guard let object = parsed as? [String: Any] else { return .failed(.badBody) }
        if endpoint == .enroll {
            // docs/protocol.md#enrollment: anything without a key, node_invalid included, means "no key".
            for field in ["node_key", "id"] {
                if let key = object[field] as? String, !key.isEmpty { return .enrolled(nodeKey: key) }
            }
            if object["node_invalid"] as? Bool == true { return .failed(.nodeInvalid) }
            return .failed(object["error"] != nil ? .errorBody : .noKey)
        }
        if object["node_invalid"] as? Bool == true { return .failed(.nodeInvalid) }
        if object["error"] != nil { return .failed(.errorBody) }
        if endpoint == .distributedRead, let queries = object["queries"] as? [String: Any] {
            return .accepted(queryIDs: queries.keys.sorted())
        }
        return .accepted(queryIDs: [])
    }

    var isSuccess: Bool {
        if case .failed = self { return false }
        return true
    }
}
