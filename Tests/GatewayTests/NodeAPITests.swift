import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import Sinks
import Testing
@testable import Gateway

/// osquery's hidden `--tls_node_api` URL form (issue 11 item 5, docs/protocol.md#node-api): real
/// TLS agents in that mode on every endpoint, with exact bodies.
@Suite struct NodeAPITests {
    /// The test gateway's config as a node-API agent gets it: the canonical text in a string.
    static let wrappedConfig = #"{"config":"{\"options\":{\"logger_tls_period\":5},\"schedule\":{\"uptime\":{\"interval\":60,\"query\":\"SELECT * FROM uptime;\"}}}"}"#

    @Test(arguments: [
        ("/abc/config&node_key=abc", ["/config", "abc"]),
        ("/old/config?enroll_secret=s&x=y&node_key=new", ["/config?enroll_secret=s&x=y", "new"]),
        ("/abc/logger?enroll_secret=a&node_key=b&node_key=abc", ["/logger?enroll_secret=a&node_key=b", "abc"]),
        ("/abc/distributed/read&node_key=abc", ["/distributed/read", "abc"]),
        ("/abc/distributed/write&node_key=abc", ["/distributed/write", "abc"]),
        ("/abc/carve/start", ["/carve/start", "abc"]),
        ("/abc/carve/block?enroll_secret=a?b/c", ["/carve/block?enroll_secret=a?b/c", "abc"]),
        ("//logger&node_key=", ["/logger", ""]),
        ("/config", []),
        ("/config?enroll_secret=a&node_key=b", []),
        ("/enroll", []),
        ("/abc/enroll", []),
        ("/abc/unknown&node_key=abc", []),
        ("abc/config", []),
    ])
    func targetsInTheNodeAPIFormAreSplit(target: String, expected: [String]) {
        let split = NodeAPIPath(endpoints: OsqueryEndpoints()).split(target: target)
        #expect((split.map { [$0.target, $0.nodeKey] } ?? []) == expected, "\(target)")
    }

    @Test func everyEndpointAnswersInTheNodeAPIForm() async throws {
        try await withLiveQueryGateway { live in
            let agent = try live.agent("web-1")
            agent.nodeAPI = true
            let enrolled = try await agent.enroll()
            let key = try #require(agent.nodeKey)
            #expect(enrolled.body == #"{"node_key":"\#(key)","node_invalid":false}"#)

            // Config: a body-less GET, answered with the config as a string.
            let config = try await agent.config()
            #expect(config.status == 200)
            #expect(config.body == Self.wrappedConfig)
            #expect(config.outcome == .accepted)

            let items = [resultItem("pack_it_users", host: "web-1", columns: ["uid": "0"])]
            #expect(try await agent.log("result", items).body == "{}")
            #expect(try live.gateway.spooledRecords().filter { $0.kind == .result }.map(\.queryName) == ["pack_it_users"])

            #expect(try await agent.distributedRead().body == #"{"queries":{}}"#)
            let id = try await live.start(["sql": "SELECT 1 AS one;", "hosts": ["web-*"]])
            #expect(try await agent.distributedRead().body == #"{"accelerate":60,"queries":{"\#(id)":"SELECT 1 AS one;"}}"#)
            #expect(try await agent.distributedWrite([id: [["one": "1"]]]).body == "{}")
            #expect(try await live.states(id) == ["web-1": "answered"])

            // Without the 5.23 header the URL's key alone authenticates (no body carries one).
            agent.sendsAuthorizationHeader = false
            #expect(try await agent.config().body == Self.wrappedConfig)
            #expect(try await agent.distributedRead().body == #"{"queries":{}}"#)
            #expect(try await agent.distributedWrite(["q2": [["n": "2"]]]).body == "{}")
            #expect(try live.gateway.spooledRecords().filter { $0.kind == .distributed }.count == 2)
            try await agent.shutdown()
        }
    }

    @Test func theSuffixKeyWinsOverAStalePathKey() async throws {
        try await withGateway { gateway in
            try await gateway.withAgent { agent in
                agent.nodeAPI = true
                agent.sendsAuthorizationHeader = false
                try await agent.enroll()
                // The path still holds the key the agent started with; `&node_key=` the current one.
                agent.nodeAPIPathKey = "key-the-agent-started-with"
                #expect(try await agent.config().body == Self.wrappedConfig)
                #expect(try await agent.log("status", [statusItem("started", host: agent.hostIdentifier)]).body == "{}")
                #expect(try await agent.distributedRead().body == #"{"queries":{}}"#)
            }
        }
    }

    @Test func anUnknownKeyInTheURLIsNodeInvalid() async throws {
        try await withGateway { gateway in
            try await gateway.withAgent { agent in
                agent.nodeAPI = true
                agent.sendsAuthorizationHeader = false
                agent.nodeKey = String(repeating: "0", count: 64)
                let reply = try await agent.config()
                #expect(reply.status == 401)
                #expect(reply.body == #"{"error":"unknown node key","node_invalid":true}"#)
                #expect(agent.nodeKey == nil)
                // With no key at all (`//config&node_key=`) too.
                let none = try await agent.distributedRead()
                #expect(none.body == #"{"error":"missing node key","node_invalid":true}"#)
            }
        }
    }

    @Test func withSecretAlwaysBothTheSecretAndTheKeyComeOffTheURL() async throws {
        try await withGateway { gateway in
            try await gateway.withAgent { agent in
                agent.nodeAPI = true
                agent.secretAlways = true
                let enrolled = try await agent.enroll()
                #expect(enrolled.body == #"{"node_key":"\#(agent.nodeKey ?? "")","node_invalid":false}"#)
                #expect(agent.url("/config", authorized: true, nodeKeySuffix: true).hasSuffix(
                    "/\(agent.nodeKey ?? "")/config?enroll_secret=\(gateway.secret)&node_key=\(agent.nodeKey ?? "")"))
                #expect(try await agent.config().body == Self.wrappedConfig)
                #expect(try await agent.log("result", [resultItem("q", host: agent.hostIdentifier, columns: ["a": "1"])]).body == "{}")
                #expect(try await agent.distributedRead().body == #"{"queries":{}}"#)
                #expect(try await agent.distributedWrite(["q": [["a": "1"]]]).body == "{}")
            }
        }
    }

    @Test func inFrontOfABackendConfigDistributedAndCarveWorkInTheNodeAPIForm() async throws {
        try await withBackend { backend in
            try await withUpstreamGateway(backend) { gateway in
                try await gateway.withAgent { agent in
                    agent.nodeAPI = true
                    agent.sendsAuthorizationHeader = false
                    try await agent.enroll()
                    let key = try #require(agent.nodeKey)
                    let wrapped = #"{"config":""# + mergedConfig.replacingOccurrences(of: "\"", with: "\\\"") + #""}"#
                    #expect(try await agent.config().body == wrapped)
                    #expect(try await agent.distributedRead().body == TestBackend.queries)
                    #expect(backend.received(TestBackend.paths.distributedRead).last?.json?["node_key"] as? String == "backend-key-1")

                    // Carve URLs carry the path key only (osquery builds them without go()'s suffix).
                    let start = try JSONSerialization.data(withJSONObject: [
                        "block_count": "1", "block_size": "8192", "carve_size": "5", "carve_id": "c1", "request_id": "r1", "node_key": key,
                    ])
                    let started = try await agent.send(.POST, "/carve/start", body: ByteBuffer(bytes: start), authorized: true)
                    #expect(started.body == #"{"session_id":"session-c1"}"#)
                    let block = try JSONSerialization.data(withJSONObject: [
                        "block_id": "0", "session_id": "session-c1", "request_id": "r1", "data": "aGVsbG8=",
                    ])
                    let sent = try await agent.send(.POST, "/carve/block", body: ByteBuffer(bytes: block), authorized: true)
                    #expect(sent.body == "{}")
                    #expect(backend.state.withLockedValue { $0.carves["session-c1"] } == ["aGVsbG8="])
                    #expect(backend.received(TestBackend.paths.carveStart).first?.json?["node_key"] as? String == "backend-key-1")
                }
            }
        }
    }
}
