import Logging

extension AgentConfigService {
    /// The `agent_config` section: where configs come from and which nodes get which.
    struct Configuration: Sendable {
        var sources: [Source] = []
        /// Checked in order; a node gets the sources of the first that matches.
        var targets: [AgentConfigTarget] = []
        /// Sources of nodes no target matches (default: every source, in order).
        var defaultSources: [String]?
        /// Collision policy and size limits of the merge.
        var options = Options()
    }

    /// One configured place an osquery config comes from.
    struct Source: Sendable {
        enum Kind: Sendable {
            case file(String)
            case directory(String)
            case inline(JSONObject)
            case http(HTTPConfigSource.Configuration)
            /// The upstream backend's config for each node (`upstream: true`), merged in at request time.
            case upstream
        }

        var name: String
        var kind: Kind
        /// How often it is fetched again (default 10s for files and folders, 60s for HTTP).
        var refresh: Duration?

        /// The file or folder this source reads, if any.
        var path: String? {
            switch kind {
            case .file(let path), .directory(let path): return path
            default: return nil
            }
        }

        /// The running source. HTTP sources own a client: shut them down when replaced.
        func make() throws -> any ConfigSource {
            switch kind {
            case .file(let path):
                return FileConfigSource(name: name, path: path, refreshInterval: refresh ?? .seconds(10))
            case .directory(let path):
                return DirectoryConfigSource(name: name, path: path, refreshInterval: refresh ?? .seconds(10))
            case .inline(let config):
                return InlineConfigSource(name: name, config: config)
            case .http(let http):
                return try HTTPConfigSource(name: name, configuration: http, refreshInterval: refresh ?? .seconds(60))
            case .upstream:
                return PerNodeConfigSource(name: name)
            }
        }
    }

    /// The service for `configuration`: its sources made, the default target last.
    /// - Parameter tagsBySecret: each enroll secret's tags, which targets may match.
    convenience init(configuration: Configuration, tagsBySecret: [String: [String]], logger: Logger) throws {
        let sources = try configuration.sources.map { try $0.make() }
        var targets = configuration.targets
        targets.append(AgentConfigTarget(
            name: "default", match: .init(), sources: configuration.defaultSources ?? configuration.sources.map(\.name)))
        self.init(sources: sources, targets: targets, options: configuration.options, tagsBySecret: tagsBySecret, logger: logger)
    }
}
