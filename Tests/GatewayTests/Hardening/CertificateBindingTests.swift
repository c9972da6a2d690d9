import Foundation
import Testing
@testable import Gateway

/// Re-enrollment cannot take over a certificate-bound node (the identity game the probe found): the
/// instance_id in an enroll body is a claim anyone can copy, a verified certificate is not.
@Suite struct CertificateBindingTests {
    /// Certificate-only enrollment: cert B claiming A's instance_id becomes a node of its own, and A's
    /// key goes on working with A's certificate.
    @Test func anotherCertificateCannotTakeOverACertificateEnrolledNode() async throws {
        try await withGateway(clientCertificates: .required, configure: { $0.configuration.enrollment.clientCertificate = true }) { gateway in
            let victim = try gateway.agent(client: "agent1")
            victim.secret = ""
            victim.instanceID = "shared-instance"
            try await victim.enroll()
            let victimKey = try #require(victim.nodeKey)

            try await gateway.withAgent(client: "agent2") { attacker in
                attacker.secret = ""
                attacker.instanceID = "shared-instance"
                let reply = try await attacker.enroll()
                #expect(reply.status == 200)
                #expect(attacker.nodeKey != victimKey)
            }
            victim.nodeKey = victimKey
            let read = try await victim.distributedRead()
            #expect(read.body == #"{"queries":{}}"#)
            try await victim.shutdown()
        }
    }

    /// Secret enrollment with a certificate binds the host: the same instance_id with the secret but
    /// another certificate, or none, gets 403 and changes nothing; the bound certificate may re-enroll.
    @Test func boundHostIsReEnrolledOnlyWithItsCertificate() async throws {
        try await withGateway(clientCertificates: .optional) { gateway in
            let owner = try gateway.agent(client: "agent1")
            owner.instanceID = "bound-instance"
            try await owner.enroll()
            let ownerKey = try #require(owner.nodeKey)

            for client in ["agent2", nil] as [String?] {
                try await gateway.withAgent(client: client) { intruder in
                    intruder.instanceID = "bound-instance"
                    let reply = try await intruder.enroll()
                    #expect(reply.status == 403)
                    #expect(reply.body == #"{"error":"this host is enrolled with a client certificate; only that certificate can enroll it again"}"#)
                    #expect(intruder.nodeKey == nil)
                }
            }
            owner.nodeKey = ownerKey
            #expect(try await owner.distributedRead().body == #"{"queries":{}}"#)

            // The owner itself may enroll again; then its old key stops working.
            try await owner.enroll()
            let newKey = try #require(owner.nodeKey)
            #expect(newKey != ownerKey)
            #expect(try await owner.distributedRead().body == #"{"queries":{}}"#)
            owner.nodeKey = ownerKey
            #expect(try await owner.distributedRead().outcome == .nodeInvalid)
            try await owner.shutdown()
        }
    }
}
