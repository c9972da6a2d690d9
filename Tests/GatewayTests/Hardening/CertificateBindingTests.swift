import Foundation
import Testing
@testable import Gateway

/// Re-enrollment cannot take over a certificate-bound node (the identity game the probe found): the
/// instance_id in an enroll body is a claim anyone can copy, a verified certificate is not.
///
/// Each step uses an agent of its own (a new connection), as osquery 5.23 does, so no step depends
/// on a kept-alive connection outliving the test gateway's idle timeout.
@Suite struct CertificateBindingTests {
    /// Certificate-only enrollment: cert B claiming A's instance_id becomes a node of its own, and A's
    /// key goes on working with A's certificate.
    @Test func anotherCertificateCannotTakeOverACertificateEnrolledNode() async throws {
        try await withGateway(clientCertificates: .required, configure: { $0.configuration.enrollment.clientCertificate = true }) { gateway in
            var victimKey: String?
            try await gateway.withAgent(client: "agent1") { victim in
                victim.secret = ""
                victim.instanceID = "shared-instance"
                try await victim.enroll()
                victimKey = victim.nodeKey
            }
            #expect(victimKey != nil)
            try await gateway.withAgent(client: "agent2") { attacker in
                attacker.secret = ""
                attacker.instanceID = "shared-instance"
                let reply = try await attacker.enroll()
                #expect(reply.status == 200)
                #expect(attacker.nodeKey != victimKey)
            }
            try await gateway.withAgent(client: "agent1") { victim in
                victim.nodeKey = victimKey
                let read = try await victim.distributedRead()
                #expect(read.body == #"{"queries":{}}"#)
            }
        }
    }

    /// Secret enrollment with a certificate binds the host: the same instance_id with the secret but
    /// another certificate, or none, gets 403 and changes nothing; the bound certificate may re-enroll.
    @Test func boundHostIsReEnrolledOnlyWithItsCertificate() async throws {
        try await withGateway(clientCertificates: .optional) { gateway in
            var ownerKey: String?
            try await gateway.withAgent(client: "agent1") { owner in
                owner.instanceID = "bound-instance"
                try await owner.enroll()
                ownerKey = owner.nodeKey
            }
            #expect(ownerKey != nil)
            for client in ["agent2", nil] as [String?] {
                try await gateway.withAgent(client: client) { intruder in
                    intruder.instanceID = "bound-instance"
                    let reply = try await intruder.enroll()
                    #expect(reply.status == 403)
                    #expect(reply.body == #"{"error":"this host is enrolled with a client certificate; only that certificate can enroll it again"}"#)
                    #expect(intruder.nodeKey == nil)
                }
            }
            try await gateway.withAgent(client: "agent1") { owner in
                owner.nodeKey = ownerKey
                let read = try await owner.distributedRead()
                #expect(read.body == #"{"queries":{}}"#)
            }
            // The owner itself may enroll again; then its old key stops working.
            var newKey: String?
            try await gateway.withAgent(client: "agent1") { owner in
                owner.instanceID = "bound-instance"
                try await owner.enroll()
                newKey = owner.nodeKey
            }
            #expect(newKey != nil && newKey != ownerKey)
            try await gateway.withAgent(client: "agent1") { owner in
                owner.nodeKey = newKey
                let read = try await owner.distributedRead()
                #expect(read.body == #"{"queries":{}}"#)
            }
            try await gateway.withAgent(client: "agent1") { owner in
                owner.nodeKey = ownerKey
                let read = try await owner.distributedRead()
                #expect(read.outcome == .nodeInvalid)
            }
        }
    }
}
