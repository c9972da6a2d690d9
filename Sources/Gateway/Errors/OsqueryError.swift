import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import Support

/// Every failure an agent can see, rendered as osquery expects it (docs/protocol.md#errors).
///
/// osquery ignores HTTP status codes (docs/protocol.md#status-codes): the body decides. So every error body is a
/// non-empty JSON object with an `error` string, and `node_invalid: true` appears only where the
/// agent should throw its key away and enroll again. The status is for proxies and people.
struct OsqueryError: HTTPResponseError, CustomStringConvertible {
    private enum Code: Sendable {
        case enrollRejected, nodeInvalid, certificateMismatch, unavailable, badRequest, tooLarge
        case unsupportedEncoding, spoolFull, busy, tooSlow, noConfig, notFound, methodNotAllowed, forbidden, gone, `internal`
    }

    private let code: Code
    /// Short reason sent to the agent; never contains a key, a secret or log content.
    let message: String
    /// For `internal`: the id also written to the server log.
    let errorID: String?

    private init(_ code: Code, _ message: String, errorID: String? = nil) {
        self.code = code
        self.message = message
        self.errorID = errorID
    }

    /// Enroll secret missing or wrong, and no acceptable certificate. 401, node_invalid.
    static func enrollRejected(_ message: String) -> Self { .init(.enrollRejected, message) }
    /// node_key missing, unknown or revoked. 401, node_invalid: the agent re-enrolls.
    static func nodeInvalid(_ message: String) -> Self { .init(.nodeInvalid, message) }
    /// A valid key presented with a certificate other than the one it is bound to. 403; re-enrolling
    /// cannot fix this, so no node_invalid.
    static func certificateMismatch(_ message: String) -> Self { .init(.certificateMismatch, message) }
    /// The node store or an upstream failed. 503, never node_invalid: an outage must not make a
    /// fleet re-enroll.
    static func unavailable(_ message: String) -> Self { .init(.unavailable, message) }
    /// A body its endpoint cannot take (malformed JSON, wrong types, unknown log_type: an
    /// `OsqueryBodyError`), a corrupt gzip body, a request Hummingbird refuses. 400.
    static func badRequest(_ message: String) -> Self { .init(.badRequest, message) }
    /// Body over the endpoint's limit, or gzip inflating past it. 413.
    static func tooLarge(_ message: String) -> Self { .init(.tooLarge, message) }
    /// A Content-Encoding other than gzip or identity. 415.
    static func unsupportedEncoding(_ message: String) -> Self { .init(.unsupportedEncoding, message) }
    /// Logs cannot be made durable (disk full or failing). 503 with Retry-After; osquery keeps the batch.
    static func spoolFull(_ message: String) -> Self { .init(.spoolFull, message) }
    /// The gateway holds too many request bodies right now. 503 with Retry-After; osquery keeps the batch.
    static func busy(_ message: String) -> Self { .init(.busy, message) }
    /// The body did not arrive within `limits.body_timeout`. 408.
    static func tooSlow(_ message: String) -> Self { .init(.tooSlow, message) }
    /// No config to serve. 503; never an empty body, which would wipe the agent's schedule.
    static func noConfig(_ message: String) -> Self { .init(.noConfig, message) }
    /// No endpoint at this path. 404.
    static func notFound(_ message: String) -> Self { .init(.notFound, message) }
    /// Wrong method for the endpoint. 405.
    static func methodNotAllowed(_ message: String) -> Self { .init(.methodNotAllowed, message) }
    /// A carve session used with another node's key. 403; no node_invalid (the key itself is fine).
    static func forbidden(_ message: String) -> Self { .init(.forbidden, message) }
    /// A carve session that expired or failed: no later block can complete it. 410.
    static func gone(_ message: String) -> Self { .init(.gone, message) }
    /// Anything else. 500 with an id that is also in the server log.
    static func `internal`(id: String) -> Self { .init(.internal, "internal error", errorID: id) }

    var status: HTTPResponse.Status {
        switch code {
        case .enrollRejected, .nodeInvalid: return .unauthorized
        case .certificateMismatch, .forbidden: return .forbidden
        case .gone: return .gone
        case .unavailable, .spoolFull, .busy, .noConfig: return .serviceUnavailable
        case .tooSlow: return .requestTimeout
        case .badRequest: return .badRequest
        case .tooLarge: return .contentTooLarge
        case .unsupportedEncoding: return .unsupportedMediaType
        case .notFound: return .notFound
        case .methodNotAllowed: return .methodNotAllowed
        case .internal: return .internalServerError
        }
    }

    /// True when the body tells the agent to drop its key and enroll again.
    var nodeInvalid: Bool { code == .enrollRejected || code == .nodeInvalid }

    /// The exact body the agent receives.
    var body: String {
        var text = "{\"error\":\(JSONString.quoted(message))"
        if let errorID { text += ",\"id\":\(JSONString.quoted(errorID))" }
        if nodeInvalid { text += ",\"node_invalid\":true" }
        return text + "}"
    }

    var description: String { message }

    func response(from request: Request, context: some RequestContext) throws -> Response {
        response
    }

    /// The answer the agent receives: the body, its status (ignored by osquery, read by proxies and
    /// people) and the headers that tell a client to back off or stop sending.
    var response: Response {
        var headers: HTTPFields = [.contentType: "application/json"]
        if code == .spoolFull || code == .busy { headers[.retryAfter] = "30" }
        // The rest of a refused body is not worth reading: close instead of draining it.
        if code == .tooLarge || code == .busy || code == .tooSlow { headers[.connection] = "close" }
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: body)))
    }
}
