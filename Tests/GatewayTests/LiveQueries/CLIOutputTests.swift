import ArgumentParser
import Foundation
import NIOConcurrencyHelpers
import NIOHTTP1
import Testing
@testable import Gateway

/// What `query`, `queries` and `nodes` print, in table and JSON format, line for line, against a
/// real gateway (issue 11 item 7): the commands run in-process with a recording `CommandOutput`.
@Suite struct CLIOutputTests {
    /// Records a command's standard output lines and standard error text.
    final class Recorder: Sendable {
        let lines = NIOLockedValueBox<[String]>([])
        let notes = NIOLockedValueBox<String>("")

        var output: CommandOutput {
            CommandOutput(
                line: { line in self.lines.withLockedValue { $0.append(line) } },
                note: { text in self.notes.withLockedValue { $0 += text } },
                isTerminal: false)
        }
    }

    /// `text` padded with spaces to `width`, as a table column.
    static func pad(_ text: String, _ width: Int) -> String {
        text + String(repeating: " ", count: max(0, width - text.count))
    }

    static func parse<Command: ParsableCommand>(_ arguments: [String], as type: Command.Type) throws -> Command {
        try #require(try GatewayCommand.parseAsRoot(arguments) as? Command)
    }

    static let sql = "SELECT name, version FROM os_version;"

    /// Runs `query SQL --host web-* --wait 4s --format FORMAT` while web-1 and web-2 answer, web-3
    /// fails, web-4 takes the query and never answers and db-1 is not targeted. Returns what it
    /// printed, the campaign id and the node ids by host.
    static func runQuery(_ live: LiveQueryGateway, format: String) async throws -> (lines: [String], notes: String, id: String, ids: [String: String]) {
        let agents = try ["web-1", "web-2", "web-3", "web-4", "db-1"].map { try live.agent($0) }
        for agent in agents { try await agent.enroll() }
        var ids: [String: String] = [:]
        for node in try await live.object(.GET, "/api/nodes")["nodes"] as? [[String: Any]] ?? [] {
            ids[node["host_identifier"] as? String ?? ""] = node["id"] as? String
        }
        let client = try AdminClient(configuration: live.gateway.configuration)
        let recorder = Recorder()
        let output = recorder.output
        let run = Task {
            let command = try CLIOutputTests.parse(
                ["query", CLIOutputTests.sql, "--host", "web-*", "--wait", "4s", "--format", format], as: QueryCommand.self)
            try await command.execute(client: client, output: output)
        }
        var id: String?
        for _ in 0..<100 where id == nil {
            try await Task.sleep(for: .milliseconds(50))
            id = (try await agents[0].distributedRead().json?["queries"] as? [String: String])?.keys.first
        }
        let campaign = try #require(id)
        #expect(try await agents[0].distributedWrite([campaign: [["name": "Debian", "version": "12"]]]).body == "{}")
        _ = try await agents[1].distributedRead()
        #expect(try await agents[1].distributedWrite([campaign: [["name": "Ubuntu", "version": "24.04"]]]).body == "{}")
        _ = try await agents[2].distributedRead()
        #expect(try await agents[2].distributedWrite(campaign, rows: [], status: 1, message: "distributed query is denylisted").body == "{}")
        _ = try await agents[3].distributedRead()
        #expect(try await agents[4].distributedRead().body == #"{"queries":{}}"#)
        try await run.value
        for agent in agents { try await agent.shutdown() }
        return (recorder.lines.withLockedValue { $0 }, recorder.notes.withLockedValue { $0 }, campaign, ids)
    }

    @Test func queryInTableFormat() async throws {
        try await withLiveQueryGateway { live in
            let run = try await Self.runQuery(live, format: "table")
            #expect(run.lines == ["host_identifier\tname\tversion", "web-1\tDebian\t12", "web-2\tUbuntu\t24.04"])
            #expect(run.notes == "web-3: failed: distributed query is denylisted\nnever answered (1): web-4\n")
        }
    }

    @Test func queryInJSONFormat() async throws {
        try await withLiveQueryGateway { live in
            let run = try await Self.runQuery(live, format: "json")
            let (id, ids) = (run.id, run.ids)
            #expect(run.lines == [
                #"{"campaign_id":"\#(id)","host_identifier":"web-1","node_id":"\#(ids["web-1"] ?? "")","row":{"name":"Debian","version":"12"}}"#,
                #"{"campaign_id":"\#(id)","host_identifier":"web-2","node_id":"\#(ids["web-2"] ?? "")","row":{"name":"Ubuntu","version":"24.04"}}"#,
                #"{"campaign_id":"\#(id)","error":"distributed query is denylisted","host_identifier":"web-3","node_id":"\#(ids["web-3"] ?? "")","status":1}"#,
            ])
            #expect(run.notes == "never answered (1): web-4\n")
        }
    }

    @Test func queriesInBothFormats() async throws {
        try await withLiveQueryGateway { live in
            let run = try await Self.runQuery(live, format: "json")
            let client = try AdminClient(configuration: live.gateway.configuration)

            let table = Recorder()
            try await Self.parse(["queries"], as: QueriesCommand.self).execute(client: client, output: table.output)
            // Columns: id (gw- and a UUID, 39), name (4), state (7), answered (8), failed (6), targeted (8), sql.
            #expect(table.lines.withLockedValue { $0 } == [
                [Self.pad("id", 39), Self.pad("name", 4), Self.pad("state", 7), "answered", "failed", "targeted", "sql"].joined(separator: "  "),
                [run.id, Self.pad("-", 4), "running", Self.pad("2", 8), Self.pad("1", 6), Self.pad("4", 8), Self.sql].joined(separator: "  "),
            ])

            let shown = try await live.object(.GET, "/api/queries/\(run.id)")
            let query = try #require(shown["query"] as? [String: Any])
            let created = try #require(query["created_at"] as? String), expires = try #require(query["expires_at"] as? String)
            let json = Recorder()
            try await Self.parse(["queries", "--format", "json"], as: QueriesCommand.self).execute(client: client, output: json.output)
            let expected: String = #"{"cancelled_at":null,"counts":{"answered":2,"cancelled":0,"expired":0,"failed":1,"pending":0,"sent":1},"#
                    + #""created_at":"\#(created)","expires_at":"\#(expires)","id":"\#(run.id)","name":null,"#
                    + #""sql":"\#(Self.sql)","state":"running","#
                    + #""target":{"all":false,"certificates":[],"hosts":["web-*"],"node_ids":[],"osquery_version":null,"platforms":[],"secrets":[],"tags":[]},"#
                    + #""targeted":4}"#
            #expect(json.lines.withLockedValue { $0 } == [expected])
            #expect(table.notes.withLockedValue { $0 }.isEmpty && json.notes.withLockedValue { $0 }.isEmpty)
        }
    }

    @Test func nodesInBothFormats() async throws {
        try await withLiveQueryGateway { live in
            let agents = try ["web-1", "db-1"].map { try live.agent($0) }
            for agent in agents { try await agent.enroll() }
            let listed = try #require(try await live.object(.GET, "/api/nodes")["nodes"] as? [[String: Any]])
            #expect(listed.map { $0["host_identifier"] as? String } == ["db-1", "web-1"])
            let facts = listed.map { node in
                (id: node["id"] as? String ?? "", enrolled: node["enrolled_at"] as? String ?? "", seen: node["last_seen"] as? String ?? "-",
                 host: node["host_identifier"] as? String ?? "")
            }
            let client = try AdminClient(configuration: live.gateway.configuration)

            let table = Recorder()
            try await Self.parse(["nodes"], as: NodesCommand.self).execute(client: client, output: table.output)
            // Columns: id (a UUID, 36), host_identifier (15), platform (8), osquery (7), last_seen (20), revoked_at.
            #expect(table.lines.withLockedValue { $0 } == [
                [Self.pad("id", 36), "host_identifier", "platform", "osquery", Self.pad("last_seen", 20), "revoked_at"].joined(separator: "  "),
            ] + facts.map { node in
                [node.id, Self.pad(node.host, 15), Self.pad("linux", 8), Self.pad("5.23.1", 7), Self.pad(node.seen, 20), "-"].joined(separator: "  ")
            })

            let json = Recorder()
            try await Self.parse(["nodes", "--format", "json"], as: NodesCommand.self).execute(client: client, output: json.output)
            #expect(json.lines.withLockedValue { $0 } == facts.map { node in
                #"{"certificate_fingerprint":null,"enrolled_at":"\#(node.enrolled)","host_identifier":"\#(node.host)","id":"\#(node.id)","#
                    + #""last_seen":"\#(node.seen)","osquery_version":"5.23.1","platform":"linux","revoked_at":null,"secret_name":"default"}"#
            })

            let shown = Recorder()
            try await Self.parse(["nodes", "show", "web-1"], as: NodesCommand.self).execute(client: client, output: shown.output)
            #expect(shown.lines.withLockedValue { $0 } == json.lines.withLockedValue { Array($0.suffix(1)) })
            for agent in agents { try await agent.shutdown() }
        }
    }
}
