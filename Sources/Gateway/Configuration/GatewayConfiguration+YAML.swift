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
        let reader = YAMLReader(environment: environment)
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
        let configuration = read(top, baseDirectory: baseDirectory, reader: reader)
        top.finish()
        guard reader.problems.isEmpty, var configuration else {
            throw ConfigurationError(file: file, problems: reader.problems)
        }
        configuration.lines = reader.lines
        return configuration
    }

    private static func read(_ top: MappingReader, baseDirectory: String, reader: YAMLReader) -> GatewayConfiguration? {
        let base = PathResolver.absolute(baseDirectory, base: FileManager.default.currentDirectoryPath)
        let dataDir = PathResolver.absolute(top.string("data_dir") ?? "data", base: base)
        func inConfigDir(_ path: String) -> String { PathResolver.absolute(path, base: base) }
        func inDataDir(_ path: String) -> String { PathResolver.absolute(path, base: dataDir) }

        var listen = Listen(host: "127.0.0.1", port: 8443)
        if let text = top.string("listen") {
            if let parsed = Listen(parsing: text) {
                listen = parsed
            } else {
                reader.report("listen", top.value("listen"), "expected host:port such as 0.0.0.0:8443, found \"\(text)\"")
            }
        }

        // tls
        var tls: TLS?
        if let section = top.mapping("tls") {
            let certificate = section.requiredString("certificate")
            let privateKey = section.requiredString("private_key")
            let clientCA = section.string("client_ca").map(inConfigDir)
            let mode = section.choice("client_certificates", ClientCertificateMode.self) ?? (clientCA == nil ? .none : .optional)
            if mode != .none && clientCA == nil {
                reader.report(section.key("client_certificates"), section.value("client_certificates"), "\(mode.rawValue) needs tls.client_ca")
            }
            section.finish()
            if let certificate, let privateKey {
                tls = TLS(certificate: inConfigDir(certificate), privateKey: inConfigDir(privateKey), clientCA: clientCA, clientCertificates: mode)
            }
        } else {
            reader.report("tls", top.node, "is required (certificate and private_key)")
        }

        // endpoints
        var endpoints = Endpoints()
        if let section = top.mapping("endpoints") {
            func path(_ name: String, _ keyPath: WritableKeyPath<Endpoints, String>) {
                guard let value = section.string(name) else { return }
                if value.hasPrefix("/") && !value.contains("?") {
                    endpoints[keyPath: keyPath] = value
                } else {
                    reader.report(section.key(name), section.value(name), "must be a path starting with / and without ?")
                }
            }
            path("enroll", \.enroll)
            path("config", \.config)
            path("logger", \.logger)
            path("distributed_read", \.distributedRead)
            path("distributed_write", \.distributedWrite)
            path("carve_start", \.carveStart)
            path("carve_block", \.carveBlock)
            section.finish()
            let all = [endpoints.enroll, endpoints.config, endpoints.logger, endpoints.distributedRead,
                       endpoints.distributedWrite, endpoints.carveStart, endpoints.carveBlock]
            if Set(all).count != all.count {
                reader.report("endpoints", section.node, "two endpoints share a path")
            }
        }

        // enrollment
        var enrollment = Enrollment()
        if let section = top.mapping("enrollment") {
            var names = Set<String>()
            for (i, node) in (section.sequence("secrets") ?? []).enumerated() {
                let key = section.key("secrets[\(i)]")
                guard let entry = reader.mapping(node, key: key) else { continue }
                let name = entry.requiredString("name")
                let file = entry.string("file")
                let env = entry.string("env")
                let tags = (entry.sequence("tags") ?? []).enumerated().compactMap { reader.scalar($1, key: entry.key("tags[\($0)]")) }
                entry.finish()
                guard let name else { continue }
                if !names.insert(name).inserted { reader.report(entry.key("name"), node, "secret name \(name) is used twice") }
                switch (file, env) {
                case (let file?, nil): enrollment.secrets.append(.init(name: name, source: .file(inConfigDir(file)), tags: tags))
                case (nil, let env?): enrollment.secrets.append(.init(name: name, source: .environment(env), tags: tags))
                default: reader.report(key, node, "give exactly one of file or env")
                }
            }
            if let field = section.string("secret_field") {
                if field.isEmpty || field.contains(where: { "&=?# ".contains($0) }) {
                    reader.report(section.key("secret_field"), section.value("secret_field"), "must be a plain field name")
                } else {
                    enrollment.secretField = field
                }
            }
            enrollment.clientCertificate = section.bool("client_certificate") ?? false
            if enrollment.clientCertificate && tls?.clientCA == nil {
                reader.report(section.key("client_certificate"), section.value("client_certificate"), "needs tls.client_ca")
            }
            section.finish()
        }
        if enrollment.secrets.isEmpty && !enrollment.clientCertificate {
            reader.report("enrollment", top.value("enrollment") ?? top.node, "no way to enroll: add a secret or enable client_certificate")
        }

        // node_store
        var nodeStore = NodeStore(sqlite: inDataDir("nodes.sqlite"))
        if let section = top.mapping("node_store") {
            if let path = section.string("sqlite") { nodeStore.sqlite = inDataDir(path) }
            section.finish()
        }

        // agent_config
        var agentConfig = AgentConfig()
        if let section = top.mapping("agent_config") {
            agentConfig = readAgentConfig(section, reader: reader, inConfigDir: inConfigDir)
        }

        // spool and sinks
        var spool = SpoolSettings(directory: inDataDir("spool"))
        if let section = top.mapping("spool") {
            if let directory = section.string("directory") { spool.directory = inDataDir(directory) }
            if let value = section.size("max_size", minimum: 1 << 20) { spool.maxSize = value }
            if let value = section.size("segment_size", minimum: 64 << 10) { spool.segmentSize = value }
            if let value = section.duration("commit_window") { spool.commitWindow = value }
            if let value = section.duration("resend_window") { spool.resendWindow = value }
            if spool.segmentSize > spool.maxSize {
                reader.report(section.key("segment_size"), section.value("segment_size"), "must not be larger than max_size")
            }
            section.finish()
        }
        var sinks: [Sink] = []
        if let list = top.sequence("sinks") {
            var names = Set<String>()
            for (i, node) in list.enumerated() {
                guard let entry = reader.mapping(node, key: "sinks[\(i)]") else { continue }
                guard let sink = readSink(entry, reader: reader, inConfigDir: inConfigDir, inDataDir: inDataDir) else { continue }
                if !names.insert(sink.name).inserted { reader.report(entry.key("name"), node, "sink name \(sink.name) is used twice") }
                sinks.append(sink)
            }
            if list.isEmpty { reader.report("sinks", top.value("sinks"), "needs at least one sink, or logs would have nowhere to go") }
        } else {
            sinks = [Sink(name: "files", kind: .file(.init(name: "files", directory: inDataDir("logs"))))]
        }

        // limits
        var limits = Limits()
        if let section = top.mapping("limits") {
            // An agent's enroll body alone is about 4 KiB; below these nothing an agent sends fits.
            if let value = section.size("max_body", minimum: 16 << 10) { limits.maxBody = value }
            if let value = section.size("max_inflated_body", minimum: 16 << 10) { limits.maxInflatedBody = value }
            if let value = section.duration("idle_timeout", minimum: .seconds(1)) { limits.idleTimeout = value }
            if let value = section.duration("body_timeout", minimum: .seconds(1)) { limits.bodyTimeout = value }
            if let value = section.size("in_flight_bytes", minimum: 1 << 20) { limits.inFlightBytes = value }
            if let value = section.integer("backlog", in: 1...65_535) { limits.backlog = value }
            if limits.maxInflatedBody < limits.maxBody {
                reader.report(section.key("max_inflated_body"), section.node, "must be at least max_body")
            }
            if limits.inFlightBytes < limits.maxInflatedBody {
                reader.report(section.key("in_flight_bytes"), section.node, "must be at least max_inflated_body, or one large batch could never be read")
            }
            section.finish()
        }
        if spool.maxSize < limits.maxInflatedBody {
            reader.report("spool.max_size", top.value("spool") ?? top.node,
                          "must be at least limits.max_inflated_body (\(limits.maxInflatedBody) bytes), or a large batch could never be stored")
        }

        var admin: Listen?
        if let section = top.mapping("admin") {
            if let text = section.string("listen") {
                admin = Listen(parsing: text)
                if admin == nil { reader.report(section.key("listen"), section.value("listen"), "expected host:port such as 127.0.0.1:9443") }
            }
            section.finish()
        }
        let logLevel = top.choice("log_level", LogLevelName.self)?.rawValue ?? "info"
        let development = top.bool("development") ?? false

        guard let tls else { return nil }
        var configuration = GatewayConfiguration(
            listen: listen, tls: tls, endpoints: endpoints, dataDir: dataDir, enrollment: enrollment,
            nodeStore: nodeStore, agentConfig: agentConfig, sinks: sinks, spool: spool, limits: limits,
            logLevel: logLevel, development: development
        )
        configuration.admin = admin
        return configuration
    }
}

/// swift-log level names accepted by `log_level`.
enum LogLevelName: String, CaseIterable {
    case trace, debug, info, notice, warning, error, critical
}

extension GatewayConfiguration.Listen {
    /// Parses `host:port` or `[v6]:port`.
    init?(parsing text: String) {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
            (0...65535).contains(port)
        else { return nil }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { return nil }
        self.init(host: host, port: port)
    }

    var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// Turns configuration paths into absolute ones.
enum PathResolver {
    static func absolute(_ path: String, base: String) -> String {
        let joined = path.hasPrefix("/") ? path : (base as NSString).appendingPathComponent(path)
        return (joined as NSString).standardizingPath
    }
}
