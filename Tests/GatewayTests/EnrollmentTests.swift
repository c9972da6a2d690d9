import Foundation
import Testing
@testable import Gateway

@Suite struct EnrollmentTests {
    @Test func fileSecretIsTrimmedAsOsqueryTrimsIt() async throws {
        try await withGateway(configure: { gateway in
            try Data("  \(gateway.secret) \n\n".utf8).write(to: URL(fileURLWithPath: gateway.directory + "/secret.txt"))
        }) { gateway in
            try await gateway.withAgent { agent in
                do {
                    let reply = try await agent.enroll()
                    #expect(reply.status == 200)
                }
            }
        }
    }

    @Test func environmentSecretIsUsedAsIs() async throws {
        let name = "GW_TEST_SECRET_\(UUID().uuidString.prefix(6).uppercased())"
        setenv(name, " spaced secret ", 1)
        try await withGateway(configure: { gateway in
            gateway.configuration.enrollment.secrets.append(.init(name: "staging", source: .environment(name)))
        }) { gateway in
            try await gateway.withAgent { agent in
                agent.secret = " spaced secret "
                do {
                    let reply = try await agent.enroll()
                    #expect(reply.status == 200)
                }
                agent.secret = "spaced secret"
                do {
                    let reply = try await agent.enroll()
                    #expect(reply.status == 401)
                }
            }
        }
    }

    @Test func overrideFieldNameCarriesTheSecret() async throws {
        try await withGateway(configure: { $0.configuration.enrollment.secretField = "fleet_secret" }) { gateway in
            try await gateway.withAgent { agent in
                agent.secretField = "fleet_secret"
                do {
                    let reply = try await agent.enroll()
                    #expect(reply.status == 200)
                }
                agent.secretField = "enroll_secret"
                do {
                    let reply = try await agent.enroll()
                    #expect(reply.status == 401)
                }
            }
        }
    }

    @Test func secretAlwaysParameterIsStrippedAndUsed() async throws {
        try await withGateway(configure: { gateway in
            // A secret osquery would send unencoded: & and = survive because the parameter is last.
            try Data("a&b=c?e".utf8).write(to: URL(fileURLWithPath: gateway.directory + "/secret.txt"))
        }) { gateway in
            try await gateway.withAgent { agent in
                agent.secret = "a&b=c?e"
                agent.secretAlways = true
                let reply = try await agent.enroll()
                #expect(reply.status == 200)
                // Routing still works on every endpoint with the parameter appended.
                do {
                    let reply = try await agent.config()
                    #expect(reply.outcome == .accepted)
                }
                do {
                    let reply = try await agent.distributedRead()
                    #expect(reply.body == #"{"queries":{}}"#)
                }
                do {
                    let reply = try await agent.log("result", [resultItem("q", host: agent.hostIdentifier, columns: [:])])
                    #expect(reply.body == "{}")
                }
            }
        }
    }

    @Test func reenrollingReplacesTheOldKey() async throws {
        try await withGateway { gateway in
            try await gateway.withAgent { agent in
                try await agent.enroll()
                let first = try #require(agent.nodeKey)
                try await agent.enroll()
                let second = try #require(agent.nodeKey)
                #expect(first != second)
                do {
                    let reply = try await agent.distributedRead()
                    #expect(reply.outcome == .accepted)
                }
                agent.nodeKey = first
                let stale = try await agent.distributedRead()
                #expect(stale.body == #"{"error":"unknown node key","node_invalid":true}"#)
            }
        }
    }

    @Test func secretVerifierRefusesEmptyConfiguredSecrets() throws {
        let name = "GW_EMPTY_\(UUID().uuidString.prefix(6).uppercased())"
        setenv(name, "", 1)
        #expect(throws: ConfigurationError.self) {
            try EnrollSecretVerifier(configuration: [.init(name: "empty", source: .environment(name))])
        }
        let verifier = EnrollSecretVerifier(secrets: [.init(name: "a", bytes: Array("one".utf8), tags: []), .init(name: "b", bytes: Array("two".utf8), tags: [])])
        #expect(verifier.match("two")?.name == "b")
        #expect(verifier.match("") == nil)
        #expect(verifier.match("tw") == nil)
    }
}
