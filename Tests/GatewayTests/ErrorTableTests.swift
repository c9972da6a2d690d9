import Foundation
import NIOCore
import NIOHTTP1
import HTTPTypes
import Sinks
import Testing
@testable import Gateway

/// One test per row of the error table (README "What agents see", docs/protocol.md#errors): exact
/// status and exact body.
@Suite struct ErrorTableTests {
    @Test func wrongEnrollSecretIsRefusedWithNodeInvalid() async throws {
        try await withGateway { gateway in
            try await gateway.withAgent { agent in
                agent.secret = "not-the-secret"
                let reply = try await agent.enroll()
                #expect(reply.status == 401)
                #expect(reply.body == #"{"error":"enroll secret invalid","node_invalid":true}"#)
                #expect(agent.nodeKey == nil)
                agent.secret = ""
                let missing = try await agent.enroll()
                #expect(missing.body == #"{"error":"enroll secret missing","node_invalid":true}"#)
            }
        }
    }

    @Test func unknownOrMissingNodeKeyMakesTheAgentReenroll() async throws {
        try await withGateway { gateway in
            try await gateway.withAgent { agent in
                agent.nodeKey = "0000000000000000000000000000000000000000000000000000000000000000"
                let unknown = try await agent.config()
                #expect(unknown.status == 401)
                #expect(unknown.body == #"{"error":"unknown node key","node_invalid":true}"#)
                #expect(unknown.outcome == .nodeInvalid)
                let missing = try await agent.post("/logger", json: ["node_key": "", "log_type": "result", "data": []], authorized: true)
                #expect(missing.status == 401)
                #expect(missing.body == #"{"error":"missing node key","node_invalid":true}"#)
            }
        }
    }

    @Test func keyBoundToAnotherCertificateIsForbidden() async throws {
        try await withGateway { gateway in
            let key: String
            do {
                let first = try gateway.agent(client: "agent1")
                try await first.enroll()
                key = try #require(first.nodeKey)
                try await first.shutdown()
            }
            try await gateway.withAgent(client: "agent2") { other in
                other.nodeKey = key
                let reply = try await other.distributedRead()
                #expect(reply.status == 403)
                #expect(reply.body == #"{"error":"this node key is bound to another client certificate"}"#)
            }
            try await gateway.withAgent { bare in
                bare.nodeKey = key
                let reply = try await bare.distributedRead()
                #expect(reply.status == 403)
                #expect(reply.body == #"{"error":"this node key needs its client certificate"}"#)
            }
        }
    }

    @Test func storeOutageIsUnavailableNeverNodeInvalid() async throws {
        try await withGateway(store: FailingNodeStore()) { gateway in
            try await gateway.withAgent { agent in
                agent.nodeKey = "1111111111111111111111111111111111111111111111111111111111111111"
                let reply = try await agent.config()
                #expect(reply.status == 503)
                #expect(reply.body == #"{"error":"node store unavailable"}"#)
                let enrolled = try await agent.enroll()
                #expect(enrolled.status == 503)
                #expect(enrolled.body == #"{"error":"node store unavailable"}"#)
            }
        }
    }

    @Test func malformedJSONIsBadRequest() async throws {
        try await withGateway { gateway in
            try await gateway.withAgent { agent in
                try await agent.enroll()
                let reply = try await agent.post("/logger", body: ByteBuffer(string: #"{"log_type":"result","data":[}"#))
                #expect(reply.status == 400)
                #expect(reply.body == #"{"error":"invalid logger body: data items must be objects (at byte 29)"}"#)
                let unknownType = try await agent.log("debug", [])
                #expect(unknownType.status == 400)
                #expect(unknownType.body == #"{"error":"unknown log_type \"debug\""}"#)
            }
        }
    }

    @Test func bodyOverTheLimitIsTooLarge() async throws {
        try await withGateway { gateway in
            try await gateway.withAgent { agent in
                try await agent.enroll()
                let big = String(repeating: "x", count: 2 << 20)
                let reply = try await agent.log("result", [["name": "q", "big": big]])
                #expect(reply.status == 413)
                #expect(reply.body == #"{"error":"request body is larger than 1048576 bytes"}"#)
                #expect(reply.outcome == .failed)
            }
        }
    }

    @Test func fullSpoolIsUnavailableWithRetryAfter() async throws {
        try await withGateway(configure: { $0.configuration.spool.maxSize = 4096 }) { gateway in
            try await gateway.withAgent { agent in
                try await agent.enroll()
                let items = (0..<20).map { resultItem("q", host: agent.hostIdentifier, columns: ["i": "\($0)", "pad": String(repeating: "p", count: 200)]) }
                let reply = try await agent.log("result", items)
                #expect(reply.status == 503)
                #expect(reply.headers.first(name: "retry-after") == "30")
                #expect(reply.body == #"{"error":"logs cannot be stored right now; keep them and retry"}"#)
                #expect(reply.outcome == .failed)
                #expect(try gateway.spooledRecords().isEmpty)
            }
        }
    }

    @Test func noConfigIsUnavailableNeverEmpty() async throws {
        try await withGateway(configure: { gateway in
            try Data("{ not json".utf8).write(to: URL(fileURLWithPath: gateway.configuration.agentConfig.sources[0].path!))
        }) { gateway in
            try await gateway.withAgent { agent in
                try await agent.enroll()
                let reply = try await agent.config()
                #expect(reply.status == 503)
                #expect(reply.body == #"{"error":"no osquery config is available yet"}"#)
            }
        }
    }

    @Test func unknownPathIsNotFoundWithAnErrorBody() async throws {
        try await withGateway { gateway in
            try await gateway.withAgent { agent in
                let reply = try await agent.post("/carve/nowhere", json: [:], authorized: false)
                #expect(reply.status == 404)
                #expect(reply.body == #"{"error":"no osquery endpoint at this path"}"#)
            }
        }
    }

    @Test func anythingElseIsInternalWithAnID() throws {
        let error = OsqueryError.internal(id: "abc")
        let code = error.status.code
        #expect(code == 500)
        #expect(error.body == #"{"error":"internal error","id":"abc"}"#)
    }
}

/// A node store whose database is down.
struct FailingNodeStore: NodeStore {
    struct Down: Error {}
    func node(keyHash: [UInt8]) async throws -> NodeRecord? { throw Down() }
    func node(certificateFingerprint: String) async throws -> NodeRecord? { throw Down() }
    func node(id: String) async throws -> NodeRecord? { throw Down() }
    func revoke(_ node: NodeRecord, at date: Date) async throws { throw Down() }
    func save(_ node: NodeRecord) async throws -> NodeRecord? { throw Down() }
    func allNodes() async throws -> [NodeRecord] { throw Down() }
    func recordLastSeen(_ times: [String: Date]) async throws { throw Down() }
    func count() async throws -> Int { throw Down() }
}
