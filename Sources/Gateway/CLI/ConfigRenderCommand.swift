import ArgumentParser
import Foundation
import Logging
import NIOCore

/// `osquery-gateway config ...`: inspect the osquery config agents get.
struct ConfigCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config",
        abstract: "Inspect the osquery config agents get.",
        subcommands: [ConfigRenderCommand.self])
}

/// `osquery-gateway config render`: the merged config one node would get, with provenance.
struct ConfigRenderCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "render",
        abstract: "Print the osquery config a node would get, and where every part of it came from.",
        discussion: """
            Fetches every config source once, picks the target the described node matches, and prints a \
            JSON document: the target's name, the merged config exactly as agents receive it, the source \
            of every query, pack, option and decorator, each source's age and last error, and the merge \
            warnings (renamed queries, dropped string packs, unknown keys).

            Example: osquery-gateway config render --config gateway.yaml --platform darwin \
            --host-identifier mac-042 --secret default --osquery-version 5.23.1
            """)

    @OptionGroup var options: ConfigOption
    @Option(help: "osquery platform: linux, darwin, windows, freebsd, or an os_version platform such as ubuntu.")
    var platform: [String] = []
    @Option(help: "The node's host identifier.") var hostIdentifier = "render"
    @Option(help: "Name of the enroll secret the node used.") var secret: String?
    @Option(help: "Node tags.") var tag: [String] = []
    @Option(help: "osquery version, e.g. 5.23.1.") var osqueryVersion: String?
    @Option(help: "Client certificate subject, common name or DNS name.") var certificate: [String] = []

    func run() async throws {
        let configuration = CommandFailure.exitOnFailure { try options.load() }
        var logger = Logger(label: "osquery-gateway")
        logger.logLevel = .critical
        let service = try AgentConfigService(configuration: configuration.agentConfig, tagsBySecret: configuration.tagsBySecret, logger: logger)
        await service.refresh(force: true)
        var tags = Set(tag)
        if let secret, let secretTags = configuration.enrollment.secrets.first(where: { $0.name == secret })?.tags {
            tags.formUnion(secretTags)
        }
        let facts = NodeFacts(
            hostIdentifier: hostIdentifier, platforms: Set(platform), secretName: secret, tags: tags,
            certificateNames: certificate, osqueryVersion: osqueryVersion.flatMap(VersionRange.parseVersion))
        let index = service.targetIndex(for: facts)
        let snapshot = service.snapshot(target: index)
        var document = JSONObject()
        document["target"] = .string(index < service.targets.count ? service.targets[index].name : "none")
        if let rendered = snapshot.rendered {
            document["config"] = (try? JSONValue(parsing: Array(rendered.json.readableBytesView))) ?? .null
            document["bytes"] = .number(String(rendered.json.readableBytes))
            document["origins"] = .object(JSONObject(rendered.origins.map { ($0.key, .string($0.value)) }))
            document["warnings"] = .array(rendered.warnings.map { .string($0) })
        }
        if let problem = snapshot.problem { document["problem"] = .string(problem) }
        var sources = JSONObject()
        for source in service.sources {
            let status = snapshot.sources[source.name]
            var entry = JSONObject()
            entry["loaded"] = .bool(status?.loadedAt != nil)
            if let loaded = status?.loadedAt { entry["age_seconds"] = .number(String(Int(Date().timeIntervalSince(loaded)))) }
            if let error = status?.error { entry["error"] = .string(error) }
            sources[source.name] = .object(entry)
        }
        document["sources"] = .object(sources)
        print(JSONValue.object(document).prettyJSON())
        for source in service.sources { await (source as? HTTPConfigSource)?.shutdown() }
        if snapshot.rendered == nil { throw ExitCode(1) }
    }
}
