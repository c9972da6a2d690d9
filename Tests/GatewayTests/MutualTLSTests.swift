import Foundation
import Testing
@testable import Gateway

/// Client certificates: verified against `client_ca` only, required or optional, and binding keys.
@Suite struct MutualTLSTests {
    @Test func requiredModeRefusesAHandshakeWithoutACertificate() async throws {
        try await withGateway(clientCertificates: .required) { gateway in
            try await gateway.withAgent { agent in
                await #expect(throws: (any Error).self) { try await agent.enroll() }
            }
        }
    }

    @Test func certificateFromAnotherCAIsRefused() async throws {
        try await withGateway(clientCertificates: .required) { gateway in
            try await gateway.withAgent(client: "rogue") { agent in
                await #expect(throws: (any Error).self) { try await agent.enroll() }
            }
        }
        try await withGateway(clientCertificates: .optional) { gateway in
            try await gateway.withAgent(client: "rogue") { agent in
                await #expect(throws: (any Error).self) { try await agent.enroll() }
            }
        }
    }

    @Test func rightCertificateEnrollsAndWorks() async throws {
        try await withGateway(clientCertificates: .required) { gateway in
            try await gateway.withAgent(client: "agent1") { agent in
                do {
                    let reply = try await agent.enroll()
                    #expect(reply.status == 200)
                }
                do {
                    let reply = try await agent.config()
                    #expect(reply.outcome == .accepted)
                }
                do {
                    let reply = try await agent.distributedRead()
                    #expect(reply.body == #"{"queries":{}}"#)
                }
            }
        }
    }

    @Test func certificateBoundKeyWorksOnlyWithItsCertificate() async throws {
        try await withGateway(clientCertificates: .required) { gateway in
            let key: String
            do {
                let agent = try gateway.agent(client: "agent1")
                try await agent.enroll()
                key = try #require(agent.nodeKey)
                do {
                    let reply = try await agent.distributedRead()
                    #expect(reply.outcome == .accepted)
                }
                try await agent.shutdown()
            }
            try await gateway.withAgent(client: "agent2") { other in
                other.nodeKey = key
                let reply = try await other.config()
                #expect(reply.status == 403)
                #expect(reply.outcome == .failed)
                #expect(other.nodeKey == key, "403 must not make the agent drop its key")
            }
        }
    }

    @Test func certificateAloneEnrollsWhenEnabled() async throws {
        try await withGateway(configure: { $0.configuration.enrollment.clientCertificate = true }) { gateway in
            try await gateway.withAgent(client: "agent1") { agent in
                agent.secret = ""
                let reply = try await agent.enroll()
                #expect(reply.status == 200)
                #expect(agent.nodeKey != nil)
            }
            // osquery --disable_enrollment: empty node_key, identity from the certificate.
            try await gateway.withAgent(client: "agent2") { agent in
                let reply = try await agent.post("/distributed/read", json: ["node_key": ""], authorized: false)
                #expect(reply.body == #"{"queries":{}}"#)
            }
            // Without a certificate an empty key is still node_invalid.
            try await gateway.withAgent { agent in
                let reply = try await agent.post("/distributed/read", json: ["node_key": ""], authorized: false)
                #expect(reply.outcome == .nodeInvalid)
            }
        }
    }

    @Test func certificateAloneIsNotEnoughByDefault() async throws {
        try await withGateway { gateway in
            try await gateway.withAgent(client: "agent1") { agent in
                agent.secret = ""
                do {
                    let reply = try await agent.enroll()
                    #expect(reply.status == 401)
                }
            }
        }
    }
}
