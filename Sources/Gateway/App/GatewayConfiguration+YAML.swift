import Foundation
import Sinks
import Yams

extension GatewayConfiguration {
    /// Reads and checks a configuration file.
    ///
    /// Relative paths resolve against the file's folder, except the node store, spool and sink folders,
    /// which live under `data_dir`.
    /// - Throws: `ConfigurationError` listing every problem, each with its key and line.
    static func load(file: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> GatewayConfiguration {
        let path = PathResolver.absolute(file, base: FileManager.default.currentDirectoryPath)
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw ConfigurationError(file: path, problems: [.init(key: "", line: nil, message: "cannot read \(path)")])
        }
        var configuration = try parse(yaml: text, baseDirectory: (path as NSString).deletingLastPathComponent, environment: environment, file: path)
        configuration.file = path
        return configuration
    }

    /// Parses YAML text; see `load(file:environment:)`.
    static func parse(yaml: String, baseDirectory: String, environment: [String: String], file: String? = nil) throws -> GatewayConfiguration {
        let reader = YAMLReader(environment: environment, baseDirectory: baseDirectory)
        let root: Node
        do {
            guard let node = try Yams.compose(yaml: yaml) else {
                throw ConfigurationError(file: file, problems: [.init(key: "", line: nil, message: "the file is empty")])
            }
            root = node
        } catch let error as ConfigurationError {
            throw error
        } catch let error as YamlError {
            throw ConfigurationError(file: file, problems: [.init(key: "", line: nil, message: "not valid YAML: \(error)")])
        }
        guard let top = reader.mapping(root, key: "") else {
            throw ConfigurationError(file: file, problems: reader.problems)
        }
        let configuration = read(top, reader: reader)
        top.finish()
        guard reader.problems.isEmpty, var configuration else {
            throw ConfigurationError(file: file, problems: reader.problems)
        }
        configuration.lines = reader.lines
        return configuration
    }

    /// Composes the sections; only checks that span two sections are made here.
    private static func read(_ top: MappingReader, reader: YAMLReader) -> GatewayConfiguration? {
        reader.dataDirectory = reader.inConfigDir(top.string("data_dir") ?? "data")
        let agentListen = top.agentListen()
        let listen = agentListen.address ?? ListenAddress(host: "127.0.0.1", port: 8443)
        let tls = top.section("tls") { AgentTLS.Configuration(reading: $0) } ?? nil
        if top.value("tls") == nil { reader.report("tls", top.node, "is required (certificate and private_key)") }
        let endpoints = top.section("endpoints") { OsqueryEndpoints(reading: $0) } ?? OsqueryEndpoints()
        let enrollment = top.section("enrollment") { EnrollmentService.Configuration(reading: $0) } ?? .init()
        if enrollment.clientCertificate && tls?.clientCA == nil {
            reader.report("enrollment.client_certificate", "needs tls.client_ca")
        }
        let upstream = top.section("upstream") { Upstream.Configuration(reading: $0) } ?? nil
        // In front of a backend that judges the agents' own secrets, the gateway needs none.
        let backendJudgesSecrets = upstream != nil && upstream?.enrollSecret == nil
        if enrollment.secrets.isEmpty && !enrollment.clientCertificate && !backendJudgesSecrets {
            reader.report("enrollment", top.value("enrollment") ?? top.node, "no way to enroll: add a secret or enable client_certificate")
        }
        let nodeStore = top.section("node_store") { NodeStoreConfiguration(reading: $0) }
            ?? .sqlite(SQLiteNodeStore.Configuration(path: reader.inDataDir("nodes.sqlite")))
        let agentConfig = top.section("agent_config") { AgentConfigService.Configuration(reading: $0) } ?? .init()
        if upstream == nil {
            for (i, source) in agentConfig.sources.enumerated() {
                if case .upstream = source.kind { reader.report("agent_config.sources[\(i)].upstream", "needs the upstream section") }
            }
        }
        let spool = top.section("spool") { Spool.Configuration(reading: $0) } ?? Spool.Configuration(directory: reader.inDataDir("spool"))
        let sinks: [SinkConfiguration]
        if top.value("sinks") != nil {
            var names = Set<String>()
            sinks = top.entries("sinks") { entry, _ in
                guard let sink = SinkConfiguration(reading: entry) else { return nil }
                if !names.insert(sink.name).inserted { reader.report(entry.key("name"), entry.node, "sink name \(sink.name) is used twice") }
                return sink
            }
            if top.sequence("sinks")?.isEmpty == true {
                reader.report("sinks", top.value("sinks"), "needs at least one sink, or logs would have nowhere to go")
            }
        } else {
            sinks = [SinkConfiguration(name: "files", kind: .file(.init(name: "files", directory: reader.inDataDir("logs"))))]
        }
        if upstream == nil {
            for (i, sink) in sinks.enumerated() {
                if case .upstream = sink.kind { reader.report("sinks[\(i)].type", "upstream needs the upstream section") }
            }
        }
        let limits = top.section("limits") { RequestLimits(reading: $0) } ?? RequestLimits()
        if spool.maxSize < limits.maxInflatedBody {
            reader.report("spool.max_size", "must be at least limits.max_inflated_body (\(limits.maxInflatedBody) bytes), or a large batch could never be stored")
        }
        let admin = top.section("admin") { AdminServer.Configuration(reading: $0) } ?? nil
        let campaigns = top.section("campaigns") { CampaignService.Configuration(reading: $0) }
            ?? CampaignService.Configuration(path: reader.inDataDir("campaigns.sqlite"))
        let carves = top.section("carves") { CarveService.Configuration(reading: $0) } ?? CarveService.Configuration(dataDirectory: reader)
        let logLevel = top.choice("log_level", LogLevelName.self)?.rawValue ?? "info"
        let development = top.bool("development") ?? false

        guard let tls else { return nil }
        return GatewayConfiguration(
            listen: listen, proxyProtocol: agentListen.proxyProtocol, tls: tls, endpoints: endpoints, dataDir: reader.dataDirectory,
            enrollment: enrollment, nodeStore: nodeStore, agentConfig: agentConfig, campaigns: campaigns, carves: carves, sinks: sinks,
            spool: spool, limits: limits, logLevel: logLevel, admin: admin, upstream: upstream, development: development)
    }
}
