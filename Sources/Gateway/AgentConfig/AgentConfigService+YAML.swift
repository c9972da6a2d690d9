extension AgentConfigService.Configuration {
    /// `agent_config`: `sources`, `targets`, `default_sources`, `collisions`, `max_size`.
    /// Every source named by a target or the defaults must exist.
    init(reading section: MappingReader) {
        self.init()
        let reader = section.reader
        options.policy = section.choice("collisions", ConfigMerger.CollisionPolicy.self) ?? .rename
        if let size = section.size("max_size") { options.maxSize = size }
        var names = Set<String>()
        var perNode = 0
        sources = section.entries("sources") { entry, _ in
            guard let source = AgentConfigService.Source(reading: entry) else { return nil }
            if !names.insert(source.name).inserted { reader.report(entry.key("name"), entry.node, "source name \(source.name) is used twice") }
            if case .upstream = source.kind {
                perNode += 1
                if perNode > 1 { reader.report(entry.key("upstream"), entry.value("upstream"), "only one source can be the upstream backend") }
            }
            return source
        }
        targets = section.entries("targets") { entry, i in
            let target = AgentConfigTarget(reading: entry, index: i)
            for source in target.sources where !names.contains(source) {
                reader.report(entry.key("sources"), entry.value("sources"), "unknown source \(source)")
            }
            return target
        }
        if section.value("default_sources") != nil {
            let defaults = section.strings("default_sources")
            for source in defaults where !names.contains(source) {
                reader.report(section.key("default_sources"), section.value("default_sources"), "unknown source \(source)")
            }
            defaultSources = defaults
        }
    }
}

extension AgentConfigService.Source {
    /// One `agent_config.sources[]` entry: `name`, exactly one of `file`, `directory`, `inline`,
    /// `http` or `upstream: true` (the upstream backend's config per node), and `refresh`; `timeout`
    /// bounds an HTTP fetch (default 10s).
    init?(reading entry: MappingReader) {
        let reader = entry.reader
        let name = entry.requiredString("name")
        let refresh = entry.duration("refresh")
        let timeout = entry.duration("timeout", minimum: .milliseconds(1)) ?? .seconds(10)
        var kinds: [Kind] = []
        if let file = entry.configPath("file") { kinds.append(.file(file)) }
        if let directory = entry.configPath("directory") { kinds.append(.directory(directory)) }
        if let inline = entry.value("inline") {
            if case .object(let object)? = reader.json(inline, key: entry.key("inline")) {
                kinds.append(.inline(object))
            } else {
                reader.report(entry.key("inline"), inline, "must be a mapping holding an osquery config")
            }
        }
        if let http = entry.section("http", { HTTPConfigSource.Configuration(reading: $0, timeout: timeout) }), let http {
            kinds.append(.http(http))
        }
        if entry.bool("upstream") == true { kinds.append(.upstream) }
        guard let name else { return nil }
        guard kinds.count == 1 else {
            reader.report(entry.path, entry.node, "give exactly one of file, directory, inline, http or upstream: true")
            return nil
        }
        self.init(name: name, kind: kinds[0], refresh: refresh)
    }
}

extension AgentConfigTarget {
    /// One `agent_config.targets[]` entry: `name`, `match` (`platform`, `host_identifier`, `secret`,
    /// `certificate`, `tags`, `osquery_version`) and `sources`.
    init(reading entry: MappingReader, index: Int) {
        let name = entry.string("name") ?? "target \(index)"
        var match = Match()
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
                    entry.reader.report(conditions.key("osquery_version"), conditions.value("osquery_version"), "expected a range such as >=5.10.0 <6")
                }
            }
            conditions.finish()
        } else {
            entry.reader.report(entry.key("match"), entry.node, "is required")
        }
        self.init(name: name, match: match, sources: entry.strings("sources"))
    }
}
