import Foundation
import Support
import Testing
@testable import Gateway

/// The gateway in front of a backend served over HTTPS (issue 10 item 7): trust pinned to
/// `upstream.ca`, and a client certificate (`upstream.client_certificate` with `client_key`) for a
/// backend that requires one. The backend has a PKI of its own, unrelated to the agents'.
@Suite struct UpstreamTLSTests {
    @Test func anHTTPSBackendTrustedThroughUpstreamCAServesTheWholeRoundTrip() async throws {
        let backendPKI = try TestPKI(directory: makeTemporaryDirectory("backend-pki"))
        try await withBackend(TestBackend(tls: backendPKI)) { backend in
            #expect(backend.url.hasPrefix("https://127.0.0.1:"))
            try await withUpstreamGateway(backend, configure: { gateway in
                gateway.configuration.upstream?.endpoint.ca = backendPKI.caCertificate
            }) { gateway in
                try await gateway.withAgent { agent in
                    let enrolled = try await agent.enroll()
                    let key = try #require(agent.nodeKey)
                    #expect(enrolled.body == #"{"node_key":"\#(key)","node_invalid":false}"#)
                    #expect(backend.received(TestBackend.paths.enroll).first?.json?["enroll_secret"] as? String == backendSecret)
                    #expect(try await agent.config().body == mergedConfig)
                    #expect(backend.received(TestBackend.paths.config).last?.body == #"{"node_key":"backend-key-1"}"#)
                    #expect(try await agent.distributedRead().body == TestBackend.queries)
                    let items = [resultItem("pack_it_users", host: agent.hostIdentifier, columns: ["uid": "0"])]
                    #expect(try await agent.log("result", items).body == "{}")
                    let posted = try #require(await backend.waitFor(TestBackend.paths.logger, count: 1).first?.json)
                    #expect(posted["node_key"] as? String == "backend-key-1")
                    #expect((posted["data"] as? [[String: Any]])?.count == 1)
                }
            }
        }
    }

    /// Without `upstream.ca` the system trust store decides, and it does not know the backend's CA:
    /// the handshake fails, which is an outage (an error body), never a refusal.
    @Test func anHTTPSBackendTheGatewayDoesNotTrustIsAnOutageNotARefusal() async throws {
        let backendPKI = try TestPKI(directory: makeTemporaryDirectory("backend-pki"))
        try await withBackend(TestBackend(tls: backendPKI)) { backend in
            try await withUpstreamGateway(backend) { gateway in
                try await gateway.withAgent { agent in
                    let refused = try await agent.enroll()
                    #expect(refused.status == 503)
                    #expect(refused.body == #"{"error":"upstream backend unavailable; retry later"}"#)
                    #expect(backend.received(TestBackend.paths.enroll).isEmpty)
                }
            }
        }
    }

    @Test func aBackendThatRequiresAClientCertificateGetsTheConfiguredOne() async throws {
        let backendPKI = try TestPKI(directory: makeTemporaryDirectory("backend-pki"))
        try await withBackend(TestBackend(tls: backendPKI, requiresClientCertificate: true)) { backend in
            // No certificate: the backend ends the handshake, and the agent hears "retry later".
            try await withUpstreamGateway(backend, configure: { gateway in
                gateway.configuration.upstream?.endpoint.ca = backendPKI.caCertificate
            }) { gateway in
                try await gateway.withAgent { agent in
                    let refused = try await agent.enroll()
                    #expect(refused.body == #"{"error":"upstream backend unavailable; retry later"}"#)
                    #expect(refused.outcome == .failed)
                }
            }
            #expect(backend.received(TestBackend.paths.enroll).isEmpty)

            // With the certificate the backend's CA issued: every request goes through.
            try await withUpstreamGateway(backend, configure: { gateway in
                gateway.configuration.upstream?.endpoint.ca = backendPKI.caCertificate
                let pair = backendPKI.client("agent1")
                gateway.configuration.upstream?.endpoint.clientCertificate = HTTPEndpoint.ClientCertificate(certificate: pair.certificate, privateKey: pair.key)
            }) { gateway in
                try await gateway.withAgent { agent in
                    try await agent.enroll()
                    #expect(agent.nodeKey?.count == 64)
                    #expect(try await agent.config().body == mergedConfig)
                    #expect(backend.received(TestBackend.paths.enroll).count == 1)
                    #expect(try await agent.distributedWrite(["backend_q1": [["version": "5.23.1"]]]).body == "{}")
                    let write = try #require(backend.received(TestBackend.paths.distributedWrite).first?.json)
                    #expect(write["node_key"] as? String == "backend-key-1")
                }
            }
        }
    }
}
