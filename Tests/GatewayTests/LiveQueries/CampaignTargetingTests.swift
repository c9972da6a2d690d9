import ArgumentParser
import Foundation
import NIOHTTP1
import Testing
@testable import Gateway

/// Campaign targets by enroll-secret name, tag, osquery version range and certificate-name glob
/// (issue 11 item 2): each campaign reaches exactly the nodes whose facts match, through the same
/// matcher as config targeting.
@Suite struct CampaignTargetingTests {
    /// Three agents over real TLS:
    /// - `web-1`: secret `default` (tags prod, web), osquery 5.23.1, certificate `agent1`;
    /// - `web-2`: secret `default`, osquery 5.9.0, no certificate;
    /// - `stage-1`: secret `staging` (tag staging), osquery 5.12.1, certificate `agent2`.
    static func withFleet(_ body: (LiveQueryGateway, [AgentEmulator]) async throws -> Void) async throws {
        let live = try LiveQueryGateway()
        let gateway = live.gateway
        let stagingSecret = "staging-secret-\(UUID().uuidString.prefix(8))"
        try Data((stagingSecret + "\n").utf8).write(to: URL(fileURLWithPath: gateway.directory + "/staging.txt"))
        gateway.configuration.enrollment.secrets[0].tags = ["prod", "web"]
        gateway.configuration.enrollment.secrets.append(.init(name: "staging", source: .file(gateway.directory + "/staging.txt"), tags: ["staging"]))
        try await gateway.start()
        let pki = gateway.pki
        let web1 = try AgentEmulator(
            baseURL: gateway.baseURL, caCertificate: pki.caCertificate, clientPair: pki.client("agent1"), secret: gateway.secret, hostIdentifier: "web-1")
        let web2 = try AgentEmulator(baseURL: gateway.baseURL, caCertificate: pki.caCertificate, secret: gateway.secret, hostIdentifier: "web-2")
        web2.osqueryVersion = "5.9.0"
        let stage = try AgentEmulator(
            baseURL: gateway.baseURL, caCertificate: pki.caCertificate, clientPair: pki.client("agent2"), secret: stagingSecret, hostIdentifier: "stage-1")
        stage.osqueryVersion = "5.12.1"
        let agents = [web1, web2, stage]
        do {
            for agent in agents {
                let enrolled = try await agent.enroll()
                #expect(enrolled.outcome == .accepted, "\(agent.hostIdentifier): \(enrolled.body)")
            }
            try await body(live, agents)
        } catch {
            for agent in agents { try? await agent.shutdown() }
            try? await gateway.stop()
            try? await live.shutdown()
            throw error
        }
        for agent in agents { try await agent.shutdown() }
        try await gateway.stop()
        try await live.shutdown()
    }

    /// Starts a campaign with `target` and returns the hosts it asks (all pending).
    static func reached(_ live: LiveQueryGateway, _ target: [String: Any]) async throws -> [String: String] {
        var request = target
        request["sql"] = "SELECT 1;"
        let id = try await live.start(request)
        #expect(id.hasPrefix("gw-"), "\(target)")
        return try await live.states(id)
    }

    @Test func eachConditionReachesExactlyTheMatchingNodes() async throws {
        try await Self.withFleet { live, _ in
            let reached1 = try await Self.reached(live, ["secrets": ["staging"]])
            #expect(reached1 == ["stage-1": "pending"])
            let reached2 = try await Self.reached(live, ["tags": ["prod"]])
            #expect(reached2 == ["web-1": "pending", "web-2": "pending"])
            let reached3 = try await Self.reached(live, ["osquery_version": ">=5.10"])
            #expect(reached3 == ["web-1": "pending", "stage-1": "pending"])
            let reached4 = try await Self.reached(live, ["osquery_version": ">=5.0 <5.12"])
            #expect(reached4 == ["web-2": "pending"])
            let reached5 = try await Self.reached(live, ["certificates": ["agent*"]])
            #expect(reached5 == ["web-1": "pending", "stage-1": "pending"])
            let reached6 = try await Self.reached(live, ["certificates": ["agent1"]])
            #expect(reached6 == ["web-1": "pending"])
            // Conditions together must all hold.
            let reached7 = try await Self.reached(live, ["tags": ["prod"], "osquery_version": ">=5.10"])
            #expect(reached7 == ["web-1": "pending"])
            let reached8 = try await Self.reached(live, ["hosts": ["*-1"], "secrets": ["default"]])
            #expect(reached8 == ["web-1": "pending"])
        }
    }

    @Test func onlyTheTargetedNodesGetTheQuery() async throws {
        try await Self.withFleet { live, agents in
            let id = try await live.start(["sql": "SELECT 2;", "secrets": ["staging"]])
            #expect(try await agents[0].distributedRead().body == #"{"queries":{}}"#)
            #expect(try await agents[1].distributedRead().body == #"{"queries":{}}"#)
            #expect(try await agents[2].distributedRead().body == #"{"accelerate":60,"queries":{"\#(id)":"SELECT 2;"}}"#)
            #expect(try await agents[2].distributedWrite([id: [["n": "2"]]]).body == "{}")
            #expect(try await live.states(id) == ["stage-1": "answered"])
            let shown = try await live.object(.GET, "/api/queries/\(id)")
            let target = try #require((shown["query"] as? [String: Any])?["target"] as? [String: Any])
            #expect(target["secrets"] as? [String] == ["staging"])
            #expect(target["osquery_version"] is NSNull)
        }
    }

    @Test func targetsThatCannotMatchAreRefused() async throws {
        try await Self.withFleet { live, _ in
            let bad = try await live.call(.POST, "/api/queries", json: ["sql": "SELECT 1;", "osquery_version": "five"])
            #expect(bad.status == 400)
            #expect(bad.body == #"{"error":"osquery_version must be a range such as >=5.10 or \">=5.0 <5.12\", found \"five\""}"#)
            let wrongType = try await live.call(.POST, "/api/queries", json: ["sql": "SELECT 1;", "tags": "prod"])
            #expect(wrongType.status == 400)
            #expect(wrongType.body == #"{"error":"tags must be an array of strings"}"#)
            let nobody = try await live.call(.POST, "/api/queries", json: ["sql": "SELECT 1;", "secrets": ["nope"]])
            #expect(nobody.status == 400)
            #expect(nobody.body == #"{"error":"no enrolled node matches the target"}"#)
            // Every tag must be present: no node has both.
            let bothTags = try await live.call(.POST, "/api/queries", json: ["sql": "SELECT 1;", "tags": ["prod", "staging"]])
            #expect(bothTags.body == #"{"error":"no enrolled node matches the target"}"#)
        }
    }

    @Test func theQueryCommandTurnsItsFlagsIntoTheTarget() throws {
        let parsed = try GatewayCommand.parseAsRoot([
            "query", "SELECT 1;", "--secret", "staging", "--secret", "default", "--tag", "prod", "--version", ">=5.10",
            "--cert", "agent*", "--host", "web-*", "--config", "gateway.yaml",
        ])
        let query = try #require(parsed as? QueryCommand)
        #expect(query.target == CampaignTarget(
            hosts: ["web-*"], secrets: ["staging", "default"], tags: ["prod"], osqueryVersion: ">=5.10", certificates: ["agent*"]))
        let spelled = try #require(try GatewayCommand.parseAsRoot(["query", "SELECT 1;", "--osquery-version", "<5.12"]) as? QueryCommand)
        #expect(spelled.target == CampaignTarget(osqueryVersion: "<5.12"))
    }

    @Test func aStoredTargetReadsBackTheSame() throws {
        let target = CampaignTarget(
            nodeIDs: ["n1"], hosts: ["web-*"], platforms: ["linux"], secrets: ["default"], tags: ["prod"], osqueryVersion: ">=5.10",
            certificates: ["CN=agent*"])
        #expect(CampaignTarget(json: target.json) == target)
        #expect(String(decoding: target.json.canonicalJSON(), as: UTF8.self)
            == #"{"all":false,"certificates":["CN=agent*"],"hosts":["web-*"],"node_ids":["n1"],"osquery_version":">=5.10","platforms":["linux"],"secrets":["default"],"tags":["prod"]}"#)
        // A campaign stored before these conditions existed.
        let old = try JSONValue(parsing: Array(#"{"all":true,"hosts":[],"node_ids":[],"platforms":[]}"#.utf8))
        #expect(CampaignTarget(json: old) == CampaignTarget(all: true))
    }
}
