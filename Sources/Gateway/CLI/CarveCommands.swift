import ArgumentParser
import Foundation
import NIOHTTP1

/// `osquery-gateway carve --host HOST PATH`: asks nodes to carve a file, through a campaign whose
/// SQL selects from osquery's `carves` table with `carve = 1` (docs/protocol.md#carving).
///
/// Returns once every targeted node has answered (the carve is then scheduled on the host; osquery
/// starts uploading within about a minute) or failed, or when `--wait` runs out. Exit 0 when the
/// campaign ran, 1 on an API error.
struct CarveCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "carve",
        abstract: "Ask nodes to upload a file (osquery file carving); `carves` lists the uploads.",
        discussion: """
            The agents need --disable_carver=false and the carver endpoints (`osquery-gateway flags` prints them). \
            The path is matched exactly (no wildcards); osquery uploads a tar of it, zstd-compressed with \
            --carver_compression=true. `osquery-gateway carves` shows each upload's progress, and \
            `carves get ID --output FILE [--decompress]` downloads it.
            """)

    @OptionGroup var options: ConfigOption
    @Argument(help: "The file to carve, as the host names it.") var path: String
    @Option(name: .customLong("host"), help: "Host identifier glob (repeatable).") var hosts: [String] = []
    @Option(name: .customLong("node"), help: "Node id (repeatable).") var nodes: [String] = []
    @Option(help: "How long to wait for the nodes to schedule the carve, such as 60s.") var wait = "60s"
    @Option(help: "How long the campaign runs on the gateway, such as 10m.") var expires: String?

    func run() async throws {
        await CommandFailure.exitOnFailure {
            guard let waitFor = DurationText.parse(self.wait) else { throw CommandFailure.usage("--wait must be a duration such as 60s") }
            guard !hosts.isEmpty || !nodes.isEmpty else { throw CommandFailure.usage("give a target: --host GLOB or --node ID") }
            guard !path.isEmpty, !path.contains("\0") else { throw CommandFailure.usage("give the path of the file to carve") }
            let client = try AdminClient(configuration: try options.load())
            var body = JSONObject([
                ("sql", .string(CarveRequestSQL.select(path: path))), ("name", .string("carve")),
                ("hosts", .array(hosts.map(JSONValue.string))), ("node_ids", .array(nodes.map(JSONValue.string))),
            ])
            if let expires { body["expires_in"] = .string(expires) }
            let started = try await client.call(.POST, "/api/queries", body: .object(body))
            guard let id = started["query"]?["id"]?.string else { throw CommandFailure.failed("admin API: no query id in the answer") }
            print("campaign \(id): carving \(path)")
            try await follow(id, client: client, deadline: ContinuousClock.now + waitFor)
        }
    }

    private func follow(_ id: String, client: AdminClient, deadline: ContinuousClock.Instant) async throws {
        var reported = Set<String>()
        while true {
            let shown = try await client.call(.GET, "/api/queries/\(id)")
            guard case .array(let nodes)? = shown["nodes"] else { throw CommandFailure.failed("admin API: no nodes in the answer") }
            var finished = 0
            for node in nodes {
                let state = node["state"]?.string ?? ""
                guard state == "answered" || state == "failed" else { continue }
                finished += 1
                let host = node["host_identifier"]?.string ?? ""
                guard reported.insert(node["node_id"]?.string ?? host).inserted else { continue }
                if state == "failed" {
                    print("\(host): failed: \(node["message"]?.string ?? "")")
                    continue
                }
                var scheduled: [String] = []
                if case .array(let rows)? = node["rows"] {
                    scheduled = rows.filter { $0["carve"]?.cellText == "1" }.compactMap { $0["carve_guid"]?.string }
                }
                if scheduled.isEmpty {
                    print("\(host): no carve scheduled (is carving on? osqueryd --disable_carver=false)")
                } else {
                    for guid in scheduled { print("\(host): carve \(guid) scheduled; the upload starts within a minute") }
                }
            }
            fflush(nil)
            if finished == nodes.count || ContinuousClock.now >= deadline {
                let silent = nodes.filter { !["answered", "failed"].contains($0["state"]?.string ?? "") }
                    .map { $0["host_identifier"]?.string ?? "" }
                if !silent.isEmpty {
                    FileHandle.standardError.write(Data("never answered (\(silent.count)): \(silent.joined(separator: ", "))\n".utf8))
                }
                return
            }
            try await Task.sleep(for: .milliseconds(500))
        }
    }
}

/// `osquery-gateway carves [show ID | get ID --output FILE [--decompress]]`.
struct CarvesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "carves",
        abstract: "List file carves, show one, or download one's file.",
        discussion: """
            The list shows id, host, path, status (receiving, assembling, complete, failed, expired), \
            size and SHA-256. `get` checks the downloaded file against the SHA-256 the gateway computed; \
            --decompress unpacks a zstd-compressed carve (osqueryd --carver_compression) into the tar.
            """)

    @OptionGroup var options: ConfigOption
    @Argument(help: "Nothing (list), show ID, or get ID.") var words: [String] = []
    @Option(name: .shortAndLong, help: "With get: the file to write.") var output: String?
    @Flag(help: "With get: decompress a zstd-compressed carve.") var decompress = false
    @Option(help: "table or json.") var format: OutputFormat = .table

    func run() async throws {
        await CommandFailure.exitOnFailure {
            let client = try AdminClient(configuration: try options.load())
            switch words.first {
            case nil:
                try await client.list("/api/carves", key: "carves", format: format,
                                      header: ["id", "host", "path", "status", "size", "sha256"]) { carve in
                    ["id", "host_identifier", "path", "status", "size", "sha256"].map { carve[$0]?.cellText ?? "-" }
                }
            case "show"?:
                guard words.count == 2 else { throw CommandFailure.usage("usage: carves show ID") }
                let answer = try await client.call(.GET, "/api/carves/\(NodesCommand.escaped(words[1]))")
                print((answer["carve"] ?? .null).line)
            case "get"?:
                guard words.count == 2, let output else { throw CommandFailure.usage("usage: carves get ID --output FILE [--decompress]") }
                try await get(words[1], to: output, client: client)
            default:
                throw CommandFailure.usage("usage: carves [show ID | get ID --output FILE [--decompress]]")
            }
        }
    }

    private func get(_ id: String, to output: String, client: AdminClient) async throws {
        let path = "/api/carves/\(NodesCommand.escaped(id))"
        let carve = try await client.call(.GET, path)["carve"]
        let received = try await client.download(path + "/data" + (decompress ? "?decompress=true" : ""), to: output)
        if !decompress {
            let expected = carve?["sha256"]?.string ?? received.announcedSHA256
            if let expected, expected != received.sha256 {
                throw CommandFailure.failed("\(output): SHA-256 \(received.sha256) does not match the carve's \(expected); download again")
            }
            if let size = carve?["size"]?.cellText, size != String(received.bytes) {
                throw CommandFailure.failed("\(output): \(received.bytes) bytes, but the carve has \(size); download again")
            }
        }
        print("\(output): \(received.bytes) bytes, sha256 \(received.sha256)")
    }
}
