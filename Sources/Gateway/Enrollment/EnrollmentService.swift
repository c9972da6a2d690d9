import Foundation
import Logging

/// Verifies a secret (or a client certificate), mints a node key and stores the node.
///
/// The key is returned to the agent once and stored only as its hash. A host that enrolls again
/// (same `instance_id`, else same system `uuid`) keeps its node id but gets a new key, and the old key
/// stops working at once. A node that enrolled while presenting a client certificate is bound to it:
/// only a request presenting that certificate may enroll it again (else 403, and its key keeps
/// working), and a node enrolled by a certificate alone is identified by that certificate.
struct EnrollmentService: Sendable {
    let secrets: EnrollSecrets
    let store: any NodeStore
    let authenticator: NodeAuthenticator
    let certificateEnrollment: Bool
    let logger: Logger

    /// Enrolls a node.
    /// - Parameters:
    ///   - request: the decoded enroll body.
    ///   - urlSecret: the secret from the URL (`--tls_secret_always`), used when the body has none.
    ///   - certificate: the connection's verified client certificate.
    /// - Returns: the new node key, to be sent to the agent and then forgotten.
    /// - Throws: `OsqueryError.enrollRejected` for a wrong or missing secret, `.unavailable` on store failure.
    func enroll(_ request: EnrollRequest, urlSecret: String?, certificate: PeerCertificate?) async throws -> (nodeKey: String, node: NodeRecord) {
        let candidate = (request.secret?.isEmpty == false ? request.secret : urlSecret) ?? ""
        let secret = secrets.match(candidate)
        if secret == nil && !(certificateEnrollment && certificate != nil) {
            logger.notice("enrollment refused", metadata: [
                "gw.host_identifier": "\(request.hostIdentifier)",
                "gw.reason": "\(candidate.isEmpty ? "no secret" : "wrong secret")",
            ])
            throw OsqueryError.enrollRejected(candidate.isEmpty ? "enroll secret missing" : "enroll secret invalid")
        }
        let nodeKey = NodeKey.generate()
        // Enrolled by a certificate alone, a host is that certificate: what the body claims (an
        // instance_id anyone can copy) proves nothing without a secret.
        let certificateHostKey = certificate.map { "certificate:" + $0.fingerprint }
        let record = NodeRecord(
            id: UUID().uuidString.lowercased(), keyHash: NodeKey.hash(nodeKey),
            hostKey: secret == nil ? certificateHostKey : (request.hostKey ?? certificateHostKey),
            hostIdentifier: request.hostIdentifier, platformType: request.platformType, hostDetails: request.hostDetails,
            secretName: secret?.name, certificateFingerprint: certificate?.fingerprint, enrolledAt: Date(), lastSeen: Date())
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
