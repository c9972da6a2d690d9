import Foundation
import Yams

extension GatewayConfiguration {
    /// Reads `agent_config`: sources, targets, default sources, collision policy and size limit.
    static func readAgentConfig(_ section: MappingReader, reader: YAMLReader, inConfigDir: (String) -> String) -> AgentConfig {
        var agentConfig = AgentConfig()
        agentConfig.collisions = section.choice("collisions", ConfigMerger.CollisionPolicy.self) ?? .rename
        if let size = section.size("max_size") { agentConfig.maxSize = size }
        var names = Set<String>()
        for (i, node) in (section.sequence("sources") ?? []).enumerated() {
            guard let entry = reader.mapping(node, key: section.key("sources[\(i)]")) else { continue }
            let name = entry.requiredString("name")
            let refresh = entry.duration("refresh")
            let timeout = entry.duration("timeout")
            var kinds: [AgentConfigSource.Kind] = []
            if let file = entry.string("file") { kinds.append(.file(inConfigDir(file))) }
            if let directory = entry.string("directory") { kinds.append(.directory(inConfigDir(directory))) }
            if let inline = entry.value("inline") {
                if case .object(let object)? = yamlToJSON(inline, key: entry.key("inline"), reader: reader) {
                    kinds.append(.inline(object))
                } else {
                    reader.report(entry.key("inline"), inline, "must be a mapping holding an osquery config")
                }
            }
            if let http = entry.mapping("http") {
                var source = AgentConfigSource.HTTP(url: http.requiredString("url") ?? "")
                if let method = http.string("method") {
                    if ["GET", "POST"].contains(method.uppercased()) {
                        source.method = method.uppercased()
                    } else {
                        reader.report(http.key("method"), http.value("method"), "expected GET or POST")
                    }
                }
                if let headers = http.mapping("headers") {
                    for key in headers.keys { if let value = headers.string(key) { source.headers.append((key, value)) } }
                    headers.finish()
                }
                source.body = http.string("body")
                source.ca = http.string("ca").map(inConfigDir)
                source.clientCertificate = http.string("client_certificate").map(inConfigDir)
                source.clientKey = http.string("client_key").map(inConfigDir)
                if (source.clientCertificate == nil) != (source.clientKey == nil) {
                    reader.report(http.key("client_key"), http.node, "client_certificate and client_key go together")
                }
                if !source.url.hasPrefix("http://") && !source.url.hasPrefix("https://") && !source.url.isEmpty {
                    reader.report(http.key("url"), http.value("url"), "must start with http:// or https://")
                }
                http.finish()
                kinds.append(.http(source))
            }
            entry.finish()
            guard let name else { continue }
            if !names.insert(name).inserted { reader.report(entry.key("name"), node, "source name \(name) is used twice") }
            guard kinds.count == 1 else {
                reader.report(entry.path, node, "give exactly one of file, directory, inline or http")
                continue
            }
            agentConfig.sources.append(.init(name: name, kind: kinds[0], refresh: refresh, timeout: timeout ?? .seconds(10)))
        }
        for (i, node) in (section.sequence("targets") ?? []).enumerated() {
            guard let entry = reader.mapping(node, key: section.key("targets[\(i)]")) else { continue }
            let name = entry.string("name") ?? "target \(i)"
            var match = AgentConfigTarget.Match()
            if let conditions = entry.mapping("match") {
                match.platforms = conditions.strings("platform")
                match.hostIdentifiers = conditions.strings("host_identifier")
                match.secrets = conditions.strings("secret")
                match.certificates = conditions.strings("certificate")
                match.tags = conditions.strings("tags")
                if let text = conditions.string("osquery_version") {
                    if let range = VersionRange(text) {
                        match.versions = range
                    } else {
                        reader.report(conditions.key("osquery_version"), conditions.value("osquery_version"), "expected a range such as >=5.10.0 <6")
                    }
                }
                conditions.finish()
            } else {
                reader.report(entry.key("match"), node, "is required")
            }
            let sources = entry.strings("sources")
            for source in sources where !names.contains(source) {
                reader.report(entry.key("sources"), entry.value("sources"), "unknown source \(source)")
            }
            entry.finish()
            agentConfig.targets.append(.init(name: name, match: match, sources: sources))
        }
        if section.value("default_sources") != nil {
            let defaults = section.strings("default_sources")
            for source in defaults where !names.contains(source) {
                reader.report(section.key("default_sources"), section.value("default_sources"), "unknown source \(source)")
            }
            agentConfig.defaultSources = defaults
        }
        section.finish()
        return agentConfig
    }

    /// A YAML tree as JSON: plain scalars that look like numbers, booleans or null become those.
    static func yamlToJSON(_ node: Node, key: String, reader: YAMLReader) -> JSONValue? {
        switch node {
        case .scalar(let scalar):
            let text = scalar.string
            guard scalar.style == .plain else { return .string(text) }
            switch text {
            case "true", "True", "TRUE": return .bool(true)
            case "false", "False", "FALSE": return .bool(false)
            case "null", "~", "": return .null
            default:
                if Int(text) != nil { return .number(text) }
                if Double(text) != nil, text.allSatisfy({ "0123456789.eE+-".contains($0) }) { return .number(text) }
                return .string(text)
            }
        case .mapping(let mapping):
            var object = JSONObject()
            for (k, v) in mapping {
                let name = k.string ?? ""
                if let value = yamlToJSON(v, key: key + "." + name, reader: reader) { object.members.append((name, value)) }
            }
            return .object(object)
        case .sequence(let sequence):
            return .array(sequence.enumerated().compactMap { yamlToJSON($1, key: key + "[\($0)]", reader: reader) })
        case .alias:
            reader.report(key, node, "aliases are not supported here")
            return nil
        }
    }
}

extension MappingReader {
    /// A single string or a list of strings.
    func strings(_ name: String) -> [String] {
        guard let node = value(name) else { return [] }
        if case .sequence = node {
            return (reader.sequence(node, key: key(name)) ?? []).enumerated().compactMap { reader.scalar($1, key: key("\(name)[\($0)]")) }
        }
        return reader.scalar(node, key: key(name)).map { [$0] } ?? []
    }
}
