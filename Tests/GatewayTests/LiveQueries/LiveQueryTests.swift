import Foundation
import NIOHTTP1
import Sinks
import Testing
@testable import Gateway

/// Live queries end to end (issue 11): real TLS agents, the admin API, the campaign store.
@Suite struct LiveQueryTests {
    @Test func aHostGlobReachesExactlyTheMatchingNodes() async throws {
        try await withLiveQueryGateway { live in
            let web1 = try live.agent("web-1"), web2 = try live.agent("web-2"), db = try live.agent("db-1")
            for agent in [web1, web2, db] { try await agent.enroll() }
            let id = try await live.start(["sql": "SELECT 1 AS one;", "hosts": ["web-*"], "name": "probe"])
            #expect(id.hasPrefix("gw-"))
            #expect(try await db.distributedRead().body == #"{"queries":{}}"#)
            #expect(try await web1.distributedRead().body == #"{"accelerate":60,"queries":{"\#(id)":"SELECT 1 AS one;"}}"#)
            // Sent once: the next poll has nothing.
            #expect(try await web1.distributedRead().body == #"{"queries":{}}"#)
            #expect(try await web1.distributedWrite([id: [["one": "1"]]]).body == "{}")
            #expect(try await live.states(id) == ["web-1": "answered", "web-2": "pending"])
            #expect(try await web2.distributedRead().body == #"{"accelerate":60,"queries":{"\#(id)":"SELECT 1 AS one;"}}"#)
            #expect(try await web2.distributedWrite([id: [["one": "1"]]]).body == "{}")
            let shown = try await live.object(.GET, "/api/queries/\(id)")
            let query = try #require(shown["query"] as? [String: Any])
            #expect(query["state"] as? String == "done")
            #expect(query["targeted"] as? Int == 2)
            let nodes = try #require(shown["nodes"] as? [[String: Any]])
            #expect(nodes.map { $0["host_identifier"] as? String } == ["web-1", "web-2"])
            #expect(nodes.map { ($0["rows"] as? [[String: String]]) ?? [] } == [[["one": "1"]], [["one": "1"]]])
            // The sinks got them as distributed records named after the campaign.
            let records = try live.gateway.spooledRecords().filter { $0.kind == .distributed }
            #expect(records.map(\.queryName) == ["probe", "probe"])
            for agent in [web1, web2, db] { try await agent.shutdown() }
        }
    }

    @Test func resultsSurviveARestartMidCampaign() async throws {
        let live = try LiveQueryGateway()
        try await live.gateway.start()
        let first = try live.agent("web-1"), second = try live.agent("web-2")
        try await first.enroll()
        try await second.enroll()
        let secondKey = second.nodeKey
        let id = try await live.start(["sql": "SELECT 2;", "all": true])
        _ = try await first.distributedRead()
        #expect(try await first.distributedWrite([id: [["n": "2"]]]).body == "{}")
        try await first.shutdown()
        try await second.shutdown()
        try await live.gateway.stop()

        try await live.gateway.start()
        let again = try live.agent("web-2")
        again.nodeKey = secondKey
        #expect(try await again.distributedRead().body == #"{"accelerate":60,"queries":{"\#(id)":"SELECT 2;"}}"#)
        #expect(try await again.distributedWrite([id: [["n": "2"]]]).body == "{}")
        #expect(try await live.states(id) == ["web-1": "answered", "web-2": "answered"])
        let shown = try await live.object(.GET, "/api/queries/\(id)")
        let nodes = try #require(shown["nodes"] as? [[String: Any]])
        #expect(nodes.map { ($0["rows"] as? [[String: String]]) ?? [] } == [[["n": "2"]], [["n": "2"]]])
        try await again.shutdown()
        try await live.gateway.stop()
        try await live.shutdown()
    }

    @Test func aCampaignExpires() async throws {
        try await withLiveQueryGateway { live in
            let agent = try live.agent("web-1")
            try await agent.enroll()
            let id = try await live.start(["sql": "SELECT 3;", "all": true, "expires_in": 1])
            try await Task.sleep(for: .milliseconds(1_500))
            #expect(try await agent.distributedRead().body == #"{"queries":{}}"#)
            #expect(try await live.states(id) == ["web-1": "expired"])
            let shown = try await live.object(.GET, "/api/queries/\(id)")
            #expect((shown["query"] as? [String: Any])?["state"] as? String == "expired")
            // A late answer is not stored with the campaign.
            #expect(try await agent.distributedWrite([id: [["late": "1"]]]).body == "{}")
            #expect(try await live.states(id) == ["web-1": "expired"])
            try await agent.shutdown()
        }
    }

    @Test func aCancelledCampaignIsNoLongerOffered() async throws {
        try await withLiveQueryGateway { live in
            let agent = try live.agent("web-1")
            try await agent.enroll()
            let id = try await live.start(["sql": "SELECT 4;", "all": true])
            let (status, _) = try await live.call(.POST, "/api/queries/\(id)/cancel")
            #expect(status == 200)
            #expect(try await agent.distributedRead().body == #"{"queries":{}}"#)
            #expect(try await live.states(id) == ["web-1": "cancelled"])
            let missing = try await live.call(.POST, "/api/queries/gw-nope/cancel")
            #expect(missing.status == 404)
            #expect(missing.body == #"{"error":"no query gw-nope"}"#)
            try await agent.shutdown()
        }
    }

    @Test func aFailedQueryKeepsOsquerysStatusAndMessage() async throws {
        try await withLiveQueryGateway { live in
            let agent = try live.agent("web-1")
            try await agent.enroll()
            let id = try await live.start(["sql": "SELECT * FROM crashy;", "all": true])
            _ = try await agent.distributedRead()
            #expect(try await agent.distributedWrite(id, rows: [], status: 1, message: "distributed query is denylisted").body == "{}")
            let shown = try await live.object(.GET, "/api/queries/\(id)")
            let node = try #require((shown["nodes"] as? [[String: Any]])?.first)
            #expect(node["state"] as? String == "failed")
            #expect(node["status"] as? Int == 1)
            #expect(node["message"] as? String == "distributed query is denylisted")
            #expect((shown["query"] as? [String: Any])?["counts"] as? [String: Int]
                == ["answered": 0, "cancelled": 0, "expired": 0, "failed": 1, "pending": 0, "sent": 0])
            try await agent.shutdown()
        }
    }

    @Test func aResentWriteIsStoredOnce() async throws {
        try await withLiveQueryGateway { live in
            let agent = try live.agent("web-1")
            try await agent.enroll()
            let id = try await live.start(["sql": "SELECT 5;", "all": true])
            _ = try await agent.distributedRead()
            #expect(try await agent.distributedWrite([id: [["v": "first"]]]).body == "{}")
            #expect(try await agent.distributedWrite([id: [["v": "second"]]]).body == "{}")
            let answers = try await SQLiteCampaignStore(path: live.gateway.configuration.campaigns.path).answers(of: id)
            #expect(answers.map(\.rows) == [#"[{"v":"first"}]"#])
            try await agent.shutdown()
        }
    }

    @Test func aRevokedNodeGetsNodeInvalidAndEnrollsAgain() async throws {
        try await withLiveQueryGateway { live in
            let agent = try live.agent("web-1")
            let enrolled = try await agent.enroll()
            #expect(agent.nodeKey != nil, "enroll answered \(enrolled.status) \(enrolled.body)")
            let (status, listed) = try await live.call(.GET, "/api/nodes")
            let nodes = (try? JSONSerialization.jsonObject(with: Data(listed.utf8))) as? [String: Any] ?? [:]
            let node = try #require((nodes["nodes"] as? [[String: Any]])?.first, "GET /api/nodes answered \(status) \(listed)")
            let id = try #require(node["id"] as? String)
            #expect(node["host_identifier"] as? String == "web-1")
            #expect(node["revoked_at"] is NSNull)
            let revoked = try await live.object(.POST, "/api/nodes/web-1/revoke")
            #expect((revoked["node"] as? [String: Any])?["revoked_at"] is String)
            let refused = try await agent.config()
            #expect(refused.body == #"{"error":"node key revoked","node_invalid":true}"#)
            try await agent.enroll()
            #expect(try await agent.config().outcome == .accepted)
            let again = try await live.object(.GET, "/api/nodes/\(id)")
            #expect((again["node"] as? [String: Any])?["revoked_at"] is NSNull)
            try await agent.shutdown()
        }
    }

    @Test func theAdminAPINeedsItsToken() async throws {
        try await withLiveQueryGateway { live in
            let wrong = try await live.call(.GET, "/api/nodes", token: "not-the-token-at-all")
            #expect(wrong.status == 401)
            #expect(wrong.body == #"{"error":"missing or wrong bearer token"}"#)
            let unknown = try await live.call(.GET, "/api/nodes/nobody")
            #expect(unknown.status == 404)
            #expect(unknown.body == #"{"error":"no node with id or host identifier nobody"}"#)
            let bad = try await live.call(.POST, "/api/queries", json: ["sql": "SELECT 1;"])
            #expect(bad.status == 400)
            #expect(bad.body == #"{"error":"no target: give all, node_ids, hosts, platforms, secrets, tags, osquery_version or certificates"}"#)
        }
    }
}

/// `osquery-gateway query` against a running gateway, through the real binary.
@Suite(.enabled(if: gatewayBinaryBuilt, "needs the built binary"))
struct LiveQueryCLITests {
    @Test func queryPrintsOneJSONObjectPerRow() async throws {
        try await withLiveQueryGateway { live in
            let agent = try live.agent("web-1")
            try await agent.enroll()
            let nodes = try await live.object(.GET, "/api/nodes")
            let nodeID = try #require((nodes["nodes"] as? [[String: Any]])?.first?["id"] as? String)
            let config = live.gateway.directory + "/cli.yaml"
            try Data("""
                listen: 127.0.0.1:0
                tls: { certificate: tls/server.pem, private_key: tls/server.key }
                enrollment: { secrets: [{ name: default, file: secret.txt }] }
                admin: { listen: 127.0.0.1:\(live.adminPort), token_file: admin_token.txt }
                """.utf8).write(to: URL(fileURLWithPath: config))
            let run = Task {
                try await GatewayRun.run(["query", "SELECT 1 AS a;", "--host", "web-*", "--format", "json", "--wait", "15s", "--config", config])
            }
            var id: String?
            for _ in 0..<100 where id == nil {
                try await Task.sleep(for: .milliseconds(100))
                id = (try await agent.distributedRead().json?["queries"] as? [String: String])?.keys.first
            }
            let campaign = try #require(id)
            #expect(try await agent.distributedWrite([campaign: [["a": "1"]]]).body == "{}")
            let result = try await run.value
            #expect(result.status == 0, "\(result.errors)")
            #expect(result.output == #"{"campaign_id":"\#(campaign)","host_identifier":"web-1","node_id":"\#(nodeID)","row":{"a":"1"}}"# + "\n")
            let listed = try await GatewayRun.run(["nodes", "--format", "json", "--config", config])
            #expect(listed.status == 0)
            #expect(listed.output.contains(#""host_identifier":"web-1""#))
            try await agent.shutdown()
        }
    }
}
