import NIOCore

/// What the backend's answer to one request means, decided once for every caller
/// (docs/upstream.md#answers).
///
/// Only a definite refusal of the key is `nodeInvalid`: a body that parses as a JSON object whose
/// `node_invalid` is `true`, from a server that did not report its own failure. Everything that
/// might be an outage is `unavailable`, and an outage must never reach agents as `node_invalid`,
/// which would re-enroll the fleet (osctrl answers `node_invalid` when its database fails). The status
/// decides nothing else, as for osquery itself (docs/protocol.md#status-codes), except that a 5xx is
/// the server saying it failed, whatever its body claims.
enum UpstreamAnswer: Sendable {
    /// A JSON object; `reply.body` is the backend's bytes as sent.
    case answered(UpstreamReply)
    /// The backend refused the node key (`"node_invalid": true`).
    case nodeInvalid
    /// No usable answer: connection error, timeout, 5xx, an empty body, or one that is not a JSON object.
    case unavailable(String)

    static let temporaryRefusals: Set<Int> = [401, 403, 407, 408, 425, 429]

    /// Classifies a response (`status`, `body`).
    static func classify(status: Int, body: ByteBuffer) -> UpstreamAnswer {
        if status >= 500 { return .unavailable("HTTP \(status)") }
        let summary: UpstreamReply.Summary
        do throws(JSONError) {
            summary = try body.scanJSON { (scanner) throws(JSONError) -> UpstreamReply.Summary in
                scanner.skipWhitespace()
                guard scanner.index < scanner.bytes.count else { throw JSONError("empty body", at: 0) }
                guard try scanner.peek() == UInt8(ascii: "{") else { throw JSONError("not a JSON object", at: scanner.index) }
                var summary = UpstreamReply.Summary()
                var idField: String?
                try scanner.forEachMember { (scanner, key) throws(JSONError) in
                    let first = try scanner.peek()
                    switch key {
                    case "node_invalid" where first == UInt8(ascii: "t") || first == UInt8(ascii: "f"):
                        if try scanner.readBool() { summary.nodeInvalid = true }
                    case "error":
                        summary.hasError = true
                        try scanner.skipValue(depth: 1)
                    case "node_key" where first == UInt8(ascii: "\""):
                        let value = try scanner.readString()
                        if summary.nodeKey == nil, !value.isEmpty { summary.nodeKey = value }
                    case "id" where first == UInt8(ascii: "\""):
                        let value = try scanner.readString()
                        if idField == nil, !value.isEmpty { idField = value }
                    default:
                        try scanner.skipValue(depth: 1)
                    }
                }
                if summary.nodeKey == nil { summary.nodeKey = idField }
                try scanner.expectEnd()
                return summary
            }
        } catch {
            return .unavailable(body.readableBytes == 0 ? "empty body (HTTP \(status))" : "not a JSON object (HTTP \(status)): \(error.message)")
        }
        if summary.nodeInvalid { return .nodeInvalid }
        // A refusal that says nothing about the key is a proxy or the backend saying "not now"
        // (authentication in front of it, a timeout, throttling): temporary, never an answer.
        if Self.temporaryRefusals.contains(status) { return .unavailable("HTTP \(status)") }
        // Any other status but 2xx is a refusal, whatever its JSON says ({"message":"Not Found"}):
        // callers treat it as an error answer, never as config, results taken or a key vouched for.
        let refused = !(200..<300).contains(status)
        return .answered(UpstreamReply(status: status, body: body, hasError: summary.hasError || refused, nodeKey: refused ? nil : summary.nodeKey))
    }
}

/// A backend answer that is a JSON object.
struct UpstreamReply: Sendable {
    struct Summary {
        var nodeInvalid = false
        var hasError = false
        var nodeKey: String?
    }

    var status: Int
    /// The backend's bytes, as sent (passed on to agents unchanged where the protocol allows).
    var body: ByteBuffer
    /// The object has an `error` member: osquery treats such an answer as a failure.
    var hasError: Bool
    /// Enroll answers: `node_key`, else `id` (osquery's fallback), when a non-empty string.
    var nodeKey: String?
}
