import Foundation
import HTTPTypes
import NIOConcurrencyHelpers
import NIOCore
import NIOSSL
import Testing
@testable import Gateway

/// Emulated agents through a gateway in front of a real test backend (issue 10): every body an
/// agent sees is asserted exactly, and so is what reaches the backend.
@Suite struct UpstreamEndToEndTests {
    @Test func enrollConfigLogsDistributedAndCarveGoThroughTheGateway() async throws {
        try await withBackend { backend in
            try await withUpstreamGateway(backend) { gateway in
                try await gateway.withAgent { agent in
                    // Enroll: forwarded with the host details and the backend's own secret; the agent
                    // gets the gateway's key, never the backend's.
                    let enrolled = try await agent.enroll()
                    let key = try #require(agent.nodeKey)
                    #expect(key.count == 64 && key != "backend-key-1")
                    #expect(enrolled.body == #"{"node_key":"\#(key)","node_invalid":false}"#)
                    let enroll = try #require(backend.received(TestBackend.paths.enroll).first?.json)
                    #expect(enroll["enroll_secret"] as? String == backendSecret)
                    #expect(enroll["host_identifier"] as? String == agent.hostIdentifier)
                    #expect(enroll["platform_type"] as? String == "9")
                    #expect(((enroll["host_details"] as? [String: Any])?["osquery_info"] as? [String: String])?["instance_id"] == agent.instanceID)

                    // Config: the backend's, fetched with the backend's key, merged with the local base.
                    let config = try await agent.config()
                    #expect(config.body == mergedConfig)
                    let fetched = try #require(backend.received(TestBackend.paths.config).last)
                    #expect(fetched.body == #"{"node_key":"backend-key-1"}"#)
                    #expect(fetched.headers[.authorization] == "NodeKey backend-key-1")
                    #expect(fetched.headers[.userAgent] == "osquery/5.23.1")
                    #expect(fetched.headers[HTTPField.Name("X-Forwarded-For")!] == "127.0.0.1")
                    // The same content gives the same bytes on every refresh.
                    #expect(try await agent.config().body == mergedConfig)

                    // Distributed read: the backend's answer, byte for byte.
                    let read = try await agent.distributedRead()
                    #expect(read.body == TestBackend.queries)
                    #expect(backend.received(TestBackend.paths.distributedRead).last?.json?["node_key"] as? String == "backend-key-1")

                    // Distributed write: passed through and answered by the backend, and stored for
                    // the local sinks too.
                    let written = try await agent.distributedWrite(["backend_q1": [["version": "5.23.1"]]])
                    #expect(written.body == "{}")
                    let write = try #require(backend.received(TestBackend.paths.distributedWrite).first?.json)
                    #expect(write["node_key"] as? String == "backend-key-1")
                    #expect((write["queries"] as? [String: [[String: String]]]) == ["backend_q1": [["version": "5.23.1"]]])
                    #expect(await gateway.waitForLines("osqueryd.distributed.log", count: 1).count == 1)

                    // Logs: acknowledged once spooled, then in the local file sink and at the backend.
                    let items = (0..<2).map { resultItem("pack_it_users", host: agent.hostIdentifier, columns: ["uid": "\($0)"]) }
                    #expect(try await agent.log("result", items).body == "{}")
                    #expect(await gateway.waitForLines("osqueryd.results.log", count: 2).count == 2)
                    let posted = try #require(await backend.waitFor(TestBackend.paths.logger, count: 1).first?.json)
                    #expect(posted["node_key"] as? String == "backend-key-1")
                    #expect(posted["log_type"] as? String == "result")
                    let data = try #require(posted["data"] as? [[String: Any]])
                    #expect(data.map { ($0["columns"] as? [String: String])?["uid"] } == ["0", "1"])
                    // The sink delivers in spool order: the distributed write it reached first was
                    // passed through already, so the backend did not get it twice.
                    #expect(backend.received(TestBackend.paths.distributedWrite).count == 1)

                    // Carve: start and block passed through; the block reaches the backend.
                    let start = try await agent.go("/carve/start", json: [
                        "block_count": "1", "block_size": "8192", "carve_size": "5", "carve_id": "c1", "request_id": "r1",
                        "node_key": key,
                    ])
                    #expect(start.body == #"{"session_id":"session-c1"}"#)
                    let block = try await agent.post("/carve/block", json: [
                        "block_id": "0", "session_id": "session-c1", "request_id": "r1", "data": "aGVsbG8=",
                    ], authorized: true)
                    #expect(block.body == "{}")
                    #expect(backend.state.withLockedValue { $0.carves["session-c1"] } == ["aGVsbG8="])
                    #expect(backend.received(TestBackend.paths.carveStart).first?.json?["node_key"] as? String == "backend-key-1")
                }
            }
        }
    }

    @Test func withoutABackendSecretTheBackendJudgesTheAgentsOwn() async throws {
        try await withBackend { backend in
            try await withUpstreamGateway(backend, configure: { gateway in
                gateway.configuration.upstream?.enrollSecret = nil
                gateway.configuration.enrollment.secrets = []
                backend.update { [secret = gateway.secret] in $0.secret = secret }
            }) { gateway in
                try await gateway.withAgent { agent in
                    agent.secret = "not-the-secret"
                    let refused = try await agent.enroll()
                    #expect(refused.body == #"{"error":"enrollment refused by the upstream backend","node_invalid":true}"#)
                    #expect(backend.received(TestBackend.paths.enroll).last?.json?["enroll_secret"] as? String == "not-the-secret")
                    agent.secret = gateway.secret
                    try await agent.enroll()
                    #expect(agent.nodeKey?.count == 64)
                    #expect(try await agent.config().body == mergedConfig)
                }
            }
        }
    }

    @Test func backendDownNeverTellsAnAgentNodeInvalidAndLosesNothing() async throws {
        try await withBackend { backend in
            try await withUpstreamGateway(backend) { gateway in
                try await gateway.withAgent { agent in
                    try await agent.enroll()
                    #expect(try await agent.config().body == mergedConfig)
                    await backend.stop()

                    // The last good merged config, not an empty body, not node_invalid.
                    let config = try await agent.config()
                    #expect(config.body == mergedConfig)
                    #expect(try await agent.distributedRead().body == #"{"queries":{}}"#)
                    let items = [resultItem("pack_it_users", host: agent.hostIdentifier, columns: ["uid": "7"])]
                    #expect(try await agent.log("result", items).body == "{}")
                    #expect(try await agent.distributedWrite(["later": [["a": "1"]]]).body == "{}")
                    #expect(await gateway.waitForLines("osqueryd.results.log", count: 1).count == 1)
                    let carve = try await agent.go("/carve/start", json: [
                        "block_count": "1", "block_size": "8192", "carve_size": "5", "carve_id": "c2", "request_id": "r2",
                        "node_key": agent.nodeKey ?? "",
                    ])
                    #expect(carve.body == #"{"error":"upstream backend unavailable; retry the carve later"}"#)
                    #expect(agent.nodeKey != nil)

                    // A new agent cannot enroll now, and is told to retry, not to drop anything.
                    try await gateway.withAgent { newcomer in
                        let refused = try await newcomer.enroll()
                        #expect(refused.status == 503)
                        #expect(refused.body == #"{"error":"upstream backend unavailable; retry later"}"#)
                    }
                    // A key the gateway has never seen cannot be checked: an error, never node_invalid.
                    try await gateway.withAgent { stranger in
                        stranger.nodeKey = "key-from-before-the-gateway"
                        let reply = try await stranger.config()
                        #expect(reply.body == #"{"error":"upstream backend unavailable; this node key cannot be checked now"}"#)
                        #expect(stranger.nodeKey == "key-from-before-the-gateway")
                    }

                    // The backend returns: what was spooled meanwhile reaches it.
                    try await backend.start()
                    let logs = await backend.waitFor(TestBackend.paths.logger, count: 1, timeout: .seconds(40))
                    #expect((logs.first?.json?["data"] as? [[String: Any]])?.count == 1)
                    let writes = await backend.waitFor(TestBackend.paths.distributedWrite, count: 1, timeout: .seconds(40))
                    let write = try #require(writes.first?.json)
                    #expect(write["node_key"] as? String == "backend-key-1")
                    #expect((write["queries"] as? [String: [[String: String]]]) == ["later": [["a": "1"]]])
                    #expect((write["statuses"] as? [String: Int]) == ["later": 0])
                }
            }
        }
    }

    @Test func withoutALastGoodConfigTheLocalOneIsServed() async throws {
        try await withBackend { backend in
            try await withUpstreamGateway(backend) { gateway in
                try await gateway.withAgent { agent in
                    try await agent.enroll()
                    backend.update { $0.failure = .emptyServerError }
                    #expect(try await agent.config().body == localConfig)
                }
            }
        }
    }

    @Test(arguments: [TestBackend.Failure.slow(.seconds(7)), .emptyServerError, .garbage])
    func aFailingBackendGivesErrorBodiesOrLastGoodAnswers(_ failure: TestBackend.Failure) async throws {
        try await withBackend { backend in
            try await withUpstreamGateway(backend) { gateway in
                try await gateway.withAgent { agent in
                    try await agent.enroll()
                    #expect(try await agent.config().body == mergedConfig)
                    backend.update { $0.failure = failure }
                    #expect(try await agent.config().body == mergedConfig)
                    #expect(try await agent.distributedRead().body == #"{"queries":{}}"#)
                    try await gateway.withAgent { newcomer in
                        let refused = try await newcomer.enroll()
                        #expect(refused.body == #"{"error":"upstream backend unavailable; retry later"}"#)
                        #expect(refused.outcome == .failed)
                    }
                    #expect(agent.nodeKey != nil)
                }
            }
        }
    }

    @Test func anAgentEnrolledAtTheBackendBeforeKeepsItsKey() async throws {
        try await withBackend { backend in
            backend.update { $0.validKeys.insert("legacy-key-7") }
            try await withUpstreamGateway(backend) { gateway in
                try await gateway.withAgent { agent in
                    agent.nodeKey = "legacy-key-7"
                    #expect(try await agent.config().body == mergedConfig)
                    #expect(agent.nodeKey == "legacy-key-7")
                    #expect(backend.received(TestBackend.paths.enroll).isEmpty)
                    let items = [statusItem("started", host: agent.hostIdentifier)]
                    #expect(try await agent.log("status", items).body == "{}")
                    let posted = try #require(await backend.waitFor(TestBackend.paths.logger, count: 1).first?.json)
                    #expect(posted["node_key"] as? String == "legacy-key-7")
                    #expect(posted["log_type"] as? String == "status")
                    // Learned: it keeps logging while the backend is down.
                    await backend.stop()
                    #expect(try await agent.log("status", [statusItem("still here", host: agent.hostIdentifier)]).body == "{}")
                    #expect(try await agent.config().body == mergedConfig)
                    try await backend.start()
                }
                // A key the backend does not know either: node_invalid, and asked only once.
                try await gateway.withAgent { stranger in
                    stranger.nodeKey = "never-issued"
                    let before = backend.received(TestBackend.paths.config).count
                    let first = try await stranger.config()
                    #expect(first.body == #"{"error":"unknown node key","node_invalid":true}"#)
                    stranger.nodeKey = "never-issued"
                    #expect(try await stranger.distributedRead().body == #"{"error":"unknown node key","node_invalid":true}"#)
                    #expect(backend.received(TestBackend.paths.config).count == before + 1)
                }
            }
        }
    }

    @Test func aKeyTheBackendRevokesStopsWorkingAndTheAgentReEnrolls() async throws {
        try await withBackend { backend in
            try await withUpstreamGateway(backend) { gateway in
                try await gateway.withAgent { agent in
                    try await agent.enroll()
                    let first = try #require(agent.nodeKey)
                    #expect(try await agent.config().body == mergedConfig)
                    backend.update { $0.refusedKeys.insert("backend-key-1") }

                    let refused = try await agent.config()
                    #expect(refused.body == #"{"error":"node key revoked by the upstream backend","node_invalid":true}"#)
                    #expect(agent.nodeKey == nil)
                    // The old key is refused by the gateway itself now, without asking the backend.
                    agent.nodeKey = first
                    let reads = backend.received(TestBackend.paths.distributedRead).count
                    #expect(try await agent.distributedRead().body == #"{"error":"node key revoked","node_invalid":true}"#)
                    #expect(backend.received(TestBackend.paths.distributedRead).count == reads)

                    // The agent enrolls again, through the gateway, and carries on.
                    try await agent.enroll()
                    let second = try #require(agent.nodeKey)
                    #expect(second != first)
                    #expect(try await agent.config().body == mergedConfig)
                    #expect(backend.received(TestBackend.paths.config).last?.json?["node_key"] as? String == "backend-key-2")
                }
            }
        }
    }

    @Test func aBackendThatGivesEveryNodeTheSameKeyWorks() async throws {
        try await withBackend { backend in
            backend.update { $0.sameKey = "this_is_a_node_secret" }
            try await withUpstreamGateway(backend) { gateway in
                try await gateway.withAgent { one in
                    try await gateway.withAgent { two in
                        try await one.enroll()
                        try await two.enroll()
                        let keys = [try #require(one.nodeKey), try #require(two.nodeKey)]
                        #expect(keys[0] != keys[1])
                        #expect(try await one.config().body == mergedConfig)
                        #expect(try await two.config().body == mergedConfig)
                        #expect(try await one.log("result", [resultItem("q", host: one.hostIdentifier, columns: ["n": "1"])]).body == "{}")
                        #expect(try await two.log("result", [resultItem("q", host: two.hostIdentifier, columns: ["n": "2"])]).body == "{}")
                        let posts = await backend.waitFor(TestBackend.paths.logger, count: 2)
                        #expect(posts.map { $0.json?["node_key"] as? String } == ["this_is_a_node_secret", "this_is_a_node_secret"])
                        #expect(await gateway.waitForLines("osqueryd.results.log", count: 2).count == 2)
                    }
                }
            }
        }
    }

    @Test func aNodeTheBackendRefusesHasItsPendingLogsDeadLetteredAndTheOthersDelivered() async throws {
        try await withBackend { backend in
            try await withUpstreamGateway(backend) { gateway in
                try await gateway.withAgent { kept in
                    try await gateway.withAgent { dropped in
                        try await kept.enroll()      // backend-key-1
                        try await dropped.enroll()   // backend-key-2
                        backend.update { $0.refusedKeys.insert("backend-key-2") }
                        #expect(try await dropped.log("result", [resultItem("q", host: dropped.hostIdentifier, columns: ["who": "dropped"])]).body == "{}")
                        #expect(try await kept.log("result", [resultItem("q", host: kept.hostIdentifier, columns: ["who": "kept"])]).body == "{}")
                        let letters = await gateway.waitForDeadLetters("backend", count: 1)
                        #expect(letters.count == 1)
                        let firstLetter = try #require(letters.first)
                        let letter = try #require(try JSONSerialization.jsonObject(with: Data(firstLetter.utf8)) as? [String: Any])
                        #expect(letter["sink"] as? String == "backend")
                        #expect((letter["reason"] as? String)?.contains("node_invalid") == true)
                        #expect(((letter["record"] as? [String: Any])?["columns"] as? [String: String]) == ["who": "dropped"])
                        let posts = await backend.waitFor(TestBackend.paths.logger, count: 2)
                        let delivered = posts.filter { $0.json?["node_key"] as? String == "backend-key-1" }
                        #expect(delivered.count == 1)
                        // Both lines are in the local file sink whatever the backend did.
                        #expect(await gateway.waitForLines("osqueryd.results.log", count: 2).count == 2)
                        // The refused node is revoked here too: it re-enrolls.
                        #expect(try await dropped.distributedRead().outcome == .nodeInvalid)
                    }
                }
            }
        }
    }

    @Test func theBackendHearsTheVerifiedIdentityAndNeverTheAgentsOwnHeaders() async throws {
        let spoofed = [
            ("X-Client-Cert-SHA256", "spoofed"), ("X-Client-Cert-Subject", "CN=admin"), ("X-Client-Cert-Serial", "1"),
            ("X-Forwarded-For", "203.0.113.9"),
        ]
        try await withBackend { backend in
            try await withUpstreamGateway(backend) { gateway in
                let certificate = try PeerCertificate(try NIOSSLCertificate.fromPEMFile(gateway.pki.client("agent1").certificate)[0])
                try await gateway.withAgent(client: "agent1") { agent in
                    try await agent.enroll()
                    let body = ByteBuffer(string: #"{"node_key":"\#(agent.nodeKey!)"}"#)
                    #expect(try await agent.post("/config", body: body, extraHeaders: spoofed).body == mergedConfig)
                    let headers = try #require(backend.received(TestBackend.paths.config).last?.headers)
                    #expect(headers[HTTPField.Name("X-Client-Cert-SHA256")!] == certificate.fingerprint)
                    #expect(headers[HTTPField.Name("X-Client-Cert-Subject")!] == certificate.subject)
                    #expect(headers[HTTPField.Name("X-Client-Cert-Serial")!] == certificate.serial)
                    #expect(headers[HTTPField.Name("X-Forwarded-For")!] == "127.0.0.1")
                    #expect(headers[values: HTTPField.Name("X-Client-Cert-SHA256")!].count == 1)
                }
                try await gateway.withAgent { agent in
                    try await agent.enroll()
                    let body = ByteBuffer(string: #"{"node_key":"\#(agent.nodeKey!)"}"#)
                    #expect(try await agent.post("/config", body: body, extraHeaders: spoofed).body == mergedConfig)
                    let headers = try #require(backend.received(TestBackend.paths.config).last?.headers)
                    #expect(headers[HTTPField.Name("X-Client-Cert-SHA256")!] == nil)
                    #expect(headers[HTTPField.Name("X-Client-Cert-Subject")!] == nil)
                    #expect(headers[HTTPField.Name("X-Forwarded-For")!] == "127.0.0.1")
                }
            }
        }
    }
}
