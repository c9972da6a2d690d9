import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOSSL
import Testing
@testable import Gateway

/// Secrets stay secret, and only TLS 1.2 and newer is spoken.
@Suite struct SecrecyTests {
    @Test func neitherNodeKeysNorEnrollSecretsReachTheLog() async throws {
        let logs = LogCapture()
        let gateway = try TestGateway()
        try await gateway.start(logs: logs)
        var keys: [String] = []
        try await gateway.withAgent { agent in
            try await agent.enroll()
            keys.append(try #require(agent.nodeKey))
            _ = try await agent.config()
            _ = try await agent.log("result", [resultItem("q", host: agent.hostIdentifier, columns: [:])])
            agent.secretAlways = true
            _ = try await agent.distributedRead()
            try await agent.enroll()  // again: a new key, logged as a re-enrollment
            keys.append(try #require(agent.nodeKey))
            agent.secret = "wrong-secret-value"
            agent.secretAlways = false
            _ = try await agent.enroll()
        }
        try await gateway.stop()
        let lines = logs.lines.withLockedValue { $0 }
        #expect(lines.contains { $0.contains("node enrolled") })
        #expect(lines.contains { $0.contains("enrollment refused") })
        for line in lines {
            #expect(!line.contains(gateway.secret), "enroll secret in: \(line)")
            #expect(!line.contains("wrong-secret-value"), "rejected secret in: \(line)")
            for key in keys { #expect(!line.contains(key), "node key in: \(line)") }
        }
    }

    @Test func nodeKeysInNodeAPIURLsNeverReachTheLog() async throws {
        let logs = LogCapture()
        let gateway = try TestGateway()
        try await gateway.start(logs: logs)
        var keys = ["stale-path-key-\(UUID().uuidString)", "unknown-key-\(UUID().uuidString)"]
        try await gateway.withAgent { agent in
            agent.nodeAPI = true
            agent.secretAlways = true
            try await agent.enroll()
            keys.append(try #require(agent.nodeKey))
            _ = try await agent.config()
            _ = try await agent.log("result", [resultItem("q", host: agent.hostIdentifier, columns: [:])])
            _ = try await agent.distributedWrite(["q": []])
            agent.nodeAPIPathKey = keys[0]
            _ = try await agent.distributedRead()
            // A malformed body behind a key in the path, and a key nobody knows.
            _ = try await agent.send(.POST, "/logger", body: ByteBuffer(string: "{not json"), authorized: true, nodeKeySuffix: true)
            agent.nodeAPIPathKey = nil
            agent.nodeKey = keys[1]
            _ = try await agent.config()
        }
        try await gateway.stop()
        let lines = logs.lines.withLockedValue { $0 }
        #expect(lines.contains { $0.contains("node enrolled") })
        for line in lines {
            #expect(!line.contains(gateway.secret), "enroll secret in: \(line)")
            for key in keys { #expect(!line.contains(key), "node key in: \(line)") }
        }
    }

    @Test func tlsOlderThan12IsRefused() async throws {
        try await withGateway { gateway in
            let old = try AgentEmulator(baseURL: gateway.baseURL, caCertificate: gateway.pki.caCertificate, secret: gateway.secret, maximumTLSVersion: .tlsv11)
            await #expect(throws: (any Error).self) { try await old.enroll() }
            try await old.shutdown()
            let current = try AgentEmulator(baseURL: gateway.baseURL, caCertificate: gateway.pki.caCertificate, secret: gateway.secret, maximumTLSVersion: .tlsv12)
            #expect(try await current.enroll().status == 200)
            try await current.shutdown()
        }
    }
}
