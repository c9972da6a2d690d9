import Foundation
import Logging
import NIOCore

/// Verifies a secret (or a client certificate), mints a node key and stores the node.
///
/// The key is returned to the agent once and stored only as its hash. A host that enrolls again
/// (same `instance_id`, else same system `uuid`) keeps its node id but gets a new key, and the old key
/// stops working at once. A node that enrolled while presenting a client certificate is bound to it:
/// only a request presenting that certificate may enroll it again (else 403, and its key keeps
/// working), and a node enrolled by a certificate alone is identified by that certificate.
///
/// In front of an upstream backend (`forwarder`) the host is enrolled there too, before it is stored
/// here; the backend's refusal is the agent's refusal, and its key is kept sealed with the node.
struct EnrollmentService: Sendable {
    let secrets: EnrollSecrets
    let store: any NodeStore
    let authenticator: NodeAuthenticator
    let certificateEnrollment: Bool
    let logger: Logger
    var forwarder: (any EnrollmentForwarder)? = nil

    /// Enrolls a node.
    /// - Parameters:
    ///   - request: the decoded enroll body.
    ///   - urlSecret: the secret from the URL (`--tls_secret_always`), used when the body has none.
    ///   - certificate: the connection's verified client certificate.
    ///   - body: the enroll body as received, for the upstream backend.
    ///   - origin: the request's connection, for the upstream backend.
    /// - Returns: the new node key, to be sent to the agent and then forgotten.
    /// - Throws: `OsqueryError.enrollRejected` for a wrong or missing secret, `.unavailable` on store failure.
    func enroll(_ request: EnrollRequest, urlSecret: String?, certificate: PeerCertificate?,
                body: ByteBuffer? = nil, origin: AgentOrigin? = nil) async throws -> (nodeKey: String, node: NodeRecord) {
        let candidate = (request.secret?.isEmpty == false ? request.secret : urlSecret) ?? ""
        let secret = secrets.match(candidate)
        // Without a secret of its own for the backend, the gateway passes the agent's on and the backend judges it.
        let backendJudges = forwarder?.backendJudgesSecret == true
        if secret == nil && !(certificateEnrollment && certificate != nil) && !backendJudges {
            logger.notice("enrollment refused", metadata: [
                "gw.host_identifier": "\(request.hostIdentifier)",
                "gw.reason": "\(candidate.isEmpty ? "no secret" : "wrong secret")",
            ])
            throw OsqueryError.enrollRejected(candidate.isEmpty ? "enroll secret missing" : "enroll secret invalid")
        }
        var upstreamKey: [UInt8]?
        if let forwarder, let body {
            upstreamKey = try await forwarder.enroll(body: body, secret: candidate, origin: origin ?? AgentOrigin(certificate: certificate))
        }
        let nodeKey = NodeKey.generate()
        // Enrolled by a certificate alone, a host is that certificate: what the body claims (an
        // instance_id anyone can copy) proves nothing without a secret (the gateway's, or one the
        // backend accepted).
        let certificateHostKey = certificate.map { "certificate:" + $0.fingerprint }
        let vouched = secret != nil || (backendJudges && upstreamKey != nil)
        let record = NodeRecord(
            id: UUID().uuidString.lowercased(), keyHash: NodeKey.hash(nodeKey),
            hostKey: vouched ? (request.hostKey ?? certificateHostKey) : certificateHostKey,
            hostIdentifier: request.hostIdentifier, platformType: request.platformType, hostDetails: request.hostDetails,
            secretName: secret?.name, certificateFingerprint: certificate?.fingerprint, enrolledAt: Date(), lastSeen: Date(),
            upstreamKey: upstreamKey, certificateNames: certificate?.names ?? [])
        let previous: NodeRecord?
        do {
            previous = try await store.save(record)
        } catch NodeStoreError.boundToAnotherCertificate {
            logger.notice("enrollment refused: host is bound to another client certificate", metadata: [
                "gw.host_identifier": "\(request.hostIdentifier)", "gw.certificate": "\(certificate?.fingerprint ?? "-")",
            ])
            throw OsqueryError.certificateMismatch("this host is enrolled with a client certificate; only that certificate can enroll it again")
        } catch {
            logger.error("node store write failed during enrollment", metadata: ["gw.error": "\(error)"])
            throw OsqueryError.unavailable("node store unavailable")
        }
        var saved = record
        if let previous { saved.id = previous.id }
        authenticator.replaced(previous, with: saved)
        logger.info("node enrolled", metadata: [
            "gw.node_id": "\(saved.id)", "gw.host_identifier": "\(saved.hostIdentifier)",
            "gw.secret": "\(secret?.name ?? "-")", "gw.certificate": "\(certificate?.fingerprint ?? "-")",
            "gw.reenrolled": "\(previous != nil)",
        ])
        return (nodeKey, saved)
    }
}
