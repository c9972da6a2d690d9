import ArgumentParser
import Foundation
import NIOHTTP1

extension OutputFormat: ExpressibleByArgument {}

/// `osquery-gateway query SQL`: asks the fleet through the admin API and prints rows as they arrive.
///
/// Returns once every targeted node has answered or failed, or when `--wait` runs out, then names
/// the hosts that never answered (on standard error). Exit 0 when the query ran, 1 on an API error.
struct QueryCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "query",
        abstract: "Run a live query on enrolled nodes and print the rows as they arrive.",
        discussion: """
            Targets: --all, --node ID (repeatable), or conditions that must all hold: --host GLOB, \
            --platform P, --secret NAME (the enroll secret, repeatable), --tag TAG (all must be present), \
            --version RANGE (osquery version, such as '>=5.10'), --cert GLOB (the enrollment certificate's \
            subject, common name or DNS name, repeatable). The campaign keeps running on the gateway after \
            this command returns, until it expires (--expires, 10m by default); `osquery-gateway queries show ID` shows everything stored for it.
            --format json prints one object per row ({"campaign_id","host_identifier","node_id","row"}) \
            and one per failed node ({"campaign_id","error","host_identifier","node_id","status"}).
            """)

    @OptionGroup var options: ConfigOption
    @Argument(help: "The SQL to run.") var sql: String
    @Option(name: .customLong("host"), help: "Host identifier glob (repeatable).") var hosts: [String] = []
    @Option(name: .customLong("node"), help: "Node id (repeatable).") var nodes: [String] = []
    @Option(help: "Platform, such as linux, darwin, windows or ubuntu.") var platform: String?
    @Option(name: .customLong("secret"), help: "Enroll secret name the node enrolled with (repeatable).") var secrets: [String] = []
    @Option(name: .customLong("tag"), help: "Tag of the node's enroll secret (repeatable; all must be present).") var tags: [String] = []
    // `--version` is also the root command's flag; this option, declared here, takes it after `query`.
    @Option(name: [.customLong("version"), .customLong("osquery-version")], help: "osquery version range, such as '>=5.10' or '>=5.0 <5.12'.")
    var osqueryVersion: String?
    @Option(name: .customLong("cert"), help: "Glob over the enrollment certificate's subject, common name or DNS names (repeatable).")
    var certificates: [String] = []
    @Flag(help: "Every enrolled node.") var all = false
    @Option(help: "Name of the campaign (the query name the sinks see).") var name: String?
    @Option(help: "How long to wait for answers, such as 60s.") var wait = "60s"
    @Option(help: "How long the campaign runs on the gateway, such as 10m.") var expires: String?
    @Option(help: "table or json.") var format: OutputFormat = .table

    func run() async throws {
        await CommandFailure.exitOnFailure {
            try await execute(client: try AdminClient(configuration: try options.load()), output: .standard)
        }
    }

    /// Starts the campaign and follows it, writing to `output` (tests record it).
    /// - Throws: `CommandFailure` for bad flags (usage) or an API error.
    func execute(client: AdminClient, output: CommandOutput) async throws {
        guard let waitFor = DurationText.parse(self.wait) else { throw CommandFailure.usage("--wait must be a duration such as 60s") }
        guard all || !target.isEmpty else {
            throw CommandFailure.usage("give a target: --all, --host, --node, --platform, --secret, --tag, --version or --cert")
        }
        var body = JSONObject([("sql", .string(sql))])
        for (key, value) in target.json.object?.members ?? [] { body[key] = value }
        if let name { body["name"] = .string(name) }
        if let expires { body["expires_in"] = .string(expires) }
        let started = try await client.call(.POST, "/api/queries", body: .object(body))
        guard let id = started["query"]?["id"]?.string else { throw CommandFailure.failed("admin API: no query id in the answer") }
        try await follow(id, client: client, deadline: ContinuousClock.now + waitFor, output: output)
    }

    /// The campaign target the flags give (the admin API's request members).
    var target: CampaignTarget {
        CampaignTarget(
            all: all, nodeIDs: nodes, hosts: hosts, platforms: platform.map { [$0] } ?? [], secrets: secrets, tags: tags,
            osqueryVersion: osqueryVersion, certificates: certificates)
    }

    private func follow(_ id: String, client: AdminClient, deadline: ContinuousClock.Instant, output: CommandOutput) async throws {
        let progress = output.isTerminal
        var printed = Set<String>()
        var header: [String]?
        while true {
            let shown = try await client.call(.GET, "/api/queries/\(id)")
            guard case .array(let nodes)? = shown["nodes"] else { throw CommandFailure.failed("admin API: no nodes in the answer") }
            var answered = 0, failed = 0
            for node in nodes {
                let nodeID = node["node_id"]?.string ?? ""
                let host = node["host_identifier"]?.string ?? ""
                let state = node["state"]?.string ?? ""
                if state == "answered" { answered += 1 }
                if state == "failed" { failed += 1 }
                guard state == "answered" || state == "failed", printed.insert(nodeID).inserted else { continue }
                if progress { output.note("\r\u{1B}[K") }
                if state == "failed" {
                    let message = node["message"]?.string ?? ""
                    if format == .json {
                        output.line(JSONValue.object(JSONObject([
                            ("campaign_id", .string(id)), ("node_id", .string(nodeID)), ("host_identifier", .string(host)),
                            ("error", .string(message)), ("status", node["status"] ?? .null),
                        ])).line)
                    } else {
                        output.note("\(host): failed: \(message)\n")
                    }
                    continue
                }
                guard case .array(let rows)? = node["rows"] else { continue }
                for row in rows {
                    if format == .json {
                        output.line(JSONValue.object(JSONObject([
                            ("campaign_id", .string(id)), ("node_id", .string(nodeID)), ("host_identifier", .string(host)), ("row", row),
                        ])).line)
                    } else {
                        let columns = header ?? (row.object?.keys.sorted() ?? [])
                        if header == nil {
                            header = columns
                            output.line((["host_identifier"] + columns).joined(separator: "\t"))
                        }
                        output.line(([host] + columns.map { row[$0]?.cellText ?? "" }).joined(separator: "\t"))
                    }
                }
            }
            output.flush()  // rows appear as they arrive, also through a pipe
            let done = answered + failed == nodes.count
            if progress {
                output.note("\r\u{1B}[K\(answered) of \(nodes.count) hosts answered, \(failed) failed")
            }
            if done || ContinuousClock.now >= deadline {
                if progress { output.note("\n") }
                let silent = nodes.filter { ["pending", "sent", "expired", "cancelled"].contains($0["state"]?.string ?? "") }
                    .map { $0["host_identifier"]?.string ?? "" }
                if !silent.isEmpty {
                    output.note("never answered (\(silent.count)): \(silent.joined(separator: ", "))\n")
                }
                output.flush()
                return
            }
            try await Task.sleep(for: .milliseconds(500))
        }
    }
}

/// `osquery-gateway queries [show ID | cancel ID]`.
struct QueriesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "queries",
        abstract: "List live-query campaigns, show one with every node's state and rows, or cancel one.")

    @OptionGroup var options: ConfigOption
    @Argument(help: "Nothing (list), show ID, or cancel ID.") var words: [String] = []
    @Option(help: "table or json.") var format: OutputFormat = .table

    func run() async throws {
        await CommandFailure.exitOnFailure {
            try await execute(client: try AdminClient(configuration: try options.load()), output: .standard)
        }
    }

    /// Lists, shows or cancels, writing to `output` (tests record it).
    func execute(client: AdminClient, output: CommandOutput) async throws {
        switch words.first {
        case nil:
            try await client.list("/api/queries", key: "queries", format: format,
                                  header: ["id", "name", "state", "answered", "failed", "targeted", "sql"], output: output) { query in
                [query["id"]?.cellText ?? "", query["name"]?.cellText ?? "-", query["state"]?.cellText ?? "",
                 query["counts"]?["answered"]?.cellText ?? "0", query["counts"]?["failed"]?.cellText ?? "0",
                 query["targeted"]?.cellText ?? "0", query["sql"]?.cellText ?? ""]
            }
        case "show"?, "cancel"?:
            guard words.count == 2 else { throw CommandFailure.usage("usage: queries \(words[0]) ID") }
            let answer = words[0] == "show"
                ? try await client.call(.GET, "/api/queries/\(words[1])")
                : try await client.call(.POST, "/api/queries/\(words[1])/cancel")
            if format == .json || words[0] == "cancel" { output.line(JSONValue.object(answer).line); return }
            output.line(answer["query"]?.line ?? "")
            guard case .array(let nodes)? = answer["nodes"] else { return }
            printTable(["host_identifier", "node_id", "state", "status", "message", "rows"], nodes.map { node in
                var rowCount = "-"
                if case .array(let rows)? = node["rows"] { rowCount = String(rows.count) }
                return [node["host_identifier"]?.cellText ?? "", node["node_id"]?.cellText ?? "", node["state"]?.cellText ?? "",
                        node["status"]?.cellText ?? "-", node["message"]?.cellText ?? "-", rowCount]
            }, output: output)
        default:
            throw CommandFailure.usage("usage: queries [show ID | cancel ID]")
        }
    }
}

/// `osquery-gateway nodes [show ID|HOST | revoke ID|HOST]`.
struct NodesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "nodes",
        abstract: "List enrolled nodes, show one, or revoke one (its next request gets node_invalid and it enrolls again).")

    @OptionGroup var options: ConfigOption
    @Argument(help: "Nothing (list), show ID|HOST, or revoke ID|HOST.") var words: [String] = []
    @Option(help: "table or json.") var format: OutputFormat = .table

    func run() async throws {
        await CommandFailure.exitOnFailure {
            try await execute(client: try AdminClient(configuration: try options.load()), output: .standard)
        }
    }

    /// Lists, shows or revokes, writing to `output` (tests record it).
    func execute(client: AdminClient, output: CommandOutput) async throws {
        switch words.first {
        case nil:
            try await client.list("/api/nodes", key: "nodes", format: format,
                                  header: ["id", "host_identifier", "platform", "osquery", "last_seen", "revoked_at"], output: output) { node in
                ["id", "host_identifier", "platform", "osquery_version", "last_seen", "revoked_at"].map { node[$0]?.cellText ?? "-" }
            }
        case "show"?, "revoke"?:
            guard words.count == 2 else { throw CommandFailure.usage("usage: nodes \(words[0]) ID|HOST") }
            let path = "/api/nodes/\(Self.escaped(words[1]))"
            let answer = words[0] == "show"
                ? try await client.call(.GET, path)
                : try await client.call(.POST, path + "/revoke")
            output.line((answer["node"] ?? .null).line)
        default:
            throw CommandFailure.usage("usage: nodes [show ID|HOST | revoke ID|HOST]")
        }
    }

    static func escaped(_ segment: String) -> String {
        segment.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(CharacterSet(charactersIn: "/"))) ?? segment
    }
}
