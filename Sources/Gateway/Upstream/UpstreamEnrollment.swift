import Logging
import NIOCore
import Support

/// Enrolls hosts at the backend on the gateway's way (docs/upstream.md#enrollment).
///
/// The agent's enroll body goes on as sent, host details and all, with the secret member replaced
/// by the backend's own secret when one is configured (else the agent's, from the body or the
/// URL). The backend's node key is returned sealed; the agent gets the gateway's own key (as
/// without a backend), which is what makes a backend that hands every node the same key work: each
/// agent still has a key of its own here, and the backend's is used only between gateway and backend.
///
/// The backend's refusal (`node_invalid`) is the agent's refusal. A backend that is down, slow or
/// answers garbage, or answers without a key, gives the agent an error body: osquery then retries
/// enrollment with backoff, and nothing tells it to drop anything.
struct UpstreamEnrollment: EnrollmentForwarder {
    let upstream: Upstream
    /// The body member holding the secret (`enrollment.secret_field`, osquery `--tls_enroll_override`).
    let secretField: String

    var backendJudgesSecret: Bool { upstream.backendSecret == nil }

    func enroll(body: ByteBuffer, secret: String, origin: AgentOrigin) async throws -> [UInt8] {
        let forwarded: UpstreamBody
        do {
            forwarded = try UpstreamBody.replacing(secretField, with: JSONString.quoted(upstream.backendSecret ?? secret), in: body)
        } catch {
            throw OsqueryError.badRequest("invalid enroll body: \(error)")
        }
        switch await upstream.client.post(.enroll, body: forwarded, origin: origin) {
        case .answered(let reply):
            guard let key = reply.nodeKey else {
                upstream.logger.warning("upstream backend answered an enrollment without a node key", metadata: [
                    "gw.status": "\(reply.status)", "gw.error_body": "\(reply.hasError)",
                ])
                throw OsqueryError.unavailable("upstream backend gave no node key; retry later")
            }
            do {
                return try upstream.sealer.seal(key)
            } catch {
                upstream.logger.error("cannot seal the backend's node key", metadata: ["gw.error": "\(error)"])
                throw OsqueryError.unavailable("enrollment cannot be stored now")
            }
        case .nodeInvalid:
            upstream.logger.notice("enrollment refused by the upstream backend")
            throw OsqueryError.enrollRejected("enrollment refused by the upstream backend")
        case .unavailable(let reason):
            upstream.logger.warning("upstream backend unavailable for an enrollment", metadata: ["gw.reason": "\(reason)"])
            throw OsqueryError.unavailable("upstream backend unavailable; retry later")
        }
    }
}
