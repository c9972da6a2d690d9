import Sinks

/// Everything `serve` needs, composed of the sections of the YAML file (see
/// `GatewayConfiguration+YAML.swift`); each section is the `Configuration` of the runtime type it
/// sets up, read by that type's own `init(reading:)`. Every path is already absolute.
///
/// Keys are documented in `Config/gateway.example.yaml`.
struct GatewayConfiguration: Sendable {
    /// Where agents connect.
    var listen = ListenAddress(host: "127.0.0.1", port: 8443)
    /// `listen.proxy_protocol`: agents come through a TCP balancer that puts a PROXY protocol
    /// header before each connection (docs/scale-out.md).
    var proxyProtocol = false
    var tls: AgentTLS.Configuration
    var endpoints = OsqueryEndpoints()
    var dataDir: String
    var enrollment = EnrollmentService.Configuration()
    var nodeStore: NodeStoreConfiguration
    var agentConfig = AgentConfigService.Configuration()
    /// Live queries (campaigns) and where they are stored.
    var campaigns: CampaignService.Configuration
    /// File carving: the carve store, the assembled files' folder and the limits.
    var carves: CarveService.Configuration
    var sinks: [SinkConfiguration] = []
    /// The durable queue between agents and sinks (see `Spool`).
    var spool: Spool.Configuration
    var limits = RequestLimits()
    var logLevel = "info"
    /// Where `/metrics` (Prometheus) and `/health` are served over plain HTTP; nil: not served.
    var admin: AdminServer.Configuration?
    /// The osquery backend the gateway stands in front of; nil: none (docs/upstream.md).
    var upstream: Upstream.Configuration?
    /// Create the development PKI, enroll secret and base config when they are missing.
    var development = false
    /// The file this was read from, if any.
    var file: String?
    /// `listen` came from `serve --listen`, so a reload keeps it.
    var listenFromCommandLine = false
    /// The line of each key in that file, for problems found after parsing.
    var lines: [String: Int] = [:]

    /// A problem with `key`, naming its line in the file where known.
    func problem(_ key: String, _ message: String) -> ConfigurationProblem {
        .locating(key, in: lines, message)
    }

    /// Enroll secret names and the tags their nodes get, for config targeting.
    var tagsBySecret: [String: [String]] {
        Dictionary(enrollment.secrets.map { ($0.name, $0.tags) }, uniquingKeysWith: { first, _ in first })
    }
}
