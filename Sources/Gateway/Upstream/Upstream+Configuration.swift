import NIOHTTP1
import Support

extension Upstream {
    /// The `upstream` section: the osquery backend the gateway stands in front of (docs/upstream.md).
    struct Configuration: Sendable {
        /// The backend's base URL with the outbound-HTTP settings every client here takes; the paths
        /// of `endpoints` are appended to `url`.
        var endpoint: HTTPEndpoint
        /// The backend's request paths (its `--*_tls_endpoint` values). Default: the gateway's own defaults.
        var endpoints = OsqueryEndpoints()
        /// What the backend expects as enroll secret, if not the agent's own. With it the gateway
        /// judges the agent's secret itself (`enrollment.secrets`); without it the agent's secret goes
        /// to the backend as sent, and the backend judges it.
        var enrollSecret: EnrollmentService.Configuration.Secret.Source?
        /// Headers that carry the verified client certificate to the backend.
        var identityHeaders = IdentityHeaders()
        /// How long a key the backend refused is answered `node_invalid` without asking it again.
        var refusedKeyMemory: Duration = .seconds(30)
        /// Requests in flight to the backend at most (`RequestPermits`): the pool's size is only a
        /// soft limit, and a slow backend must not hold every agent's request for the whole timeout.
        var maxConcurrent = 64
        /// How long a request past `maxConcurrent` waits for a slot before it gets the outage answer.
        var maxConcurrentWait: Duration = .seconds(1)
        /// Nodes whose last good merged config is kept for outages (`UpstreamConfigCache`); past it the
        /// least recently used are forgotten and get the local config during an outage.
        var lastGoodConfigs = 100_000

        /// Defaults kept below what agents and backends do: a request must end well within osquery's
        /// 16 s deadline (docs/protocol.md#retries) so the agent still gets the gateway's answer, and
        /// an idle pooled connection is closed before the backend or its load balancer closes it (a
        /// request racing that close is what made Fleet's 502s).
        init(url: String) {
            endpoint = HTTPEndpoint(url: url, method: .POST)
            endpoint.requestTimeout = .seconds(10)
            endpoint.poolIdleTimeout = .seconds(10)
        }

        /// The backend URL of `path`.
        func url(_ path: String) -> String {
            var base = endpoint.url
            while base.hasSuffix("/") { base.removeLast() }
            return base + path
        }
    }

    /// Header names for the verified client certificate; nil: not sent.
    struct IdentityHeaders: Sendable, Equatable {
        /// Lower-case hex SHA-256 of the DER certificate.
        var fingerprint: String?
        /// RFC 4514 subject.
        var subject: String?
        /// Serial number in lower-case hex.
        var serial: String?
        /// Subject alternative names, `DNS:a, IP:b, ...`.
        var subjectAlternativeNames: String?

        var names: [String] { [fingerprint, subject, serial, subjectAlternativeNames].compactMap { $0 } }
    }
}

extension Upstream.Configuration {
    /// `upstream`: the outbound-HTTP keys (`url`, `headers`, `auth`, `ca`, `client_certificate`,
    /// `client_key`, `timeout` default 10s and below 16s, `connect_timeout`, `pool` with `size` and
    /// `idle_timeout` default 10s), `endpoints` (the backend's paths, keys as the top-level
    /// `endpoints`), `enroll_secret` (one of `file` or `env`), `identity_headers` (`fingerprint`,
    /// `subject`, `serial`, `sans`), `refused_key_memory` (default 30s), `max_concurrent` (default 64),
    /// `max_concurrent_wait` (default 1s; with `timeout` below 16s) and `last_good_configs` (default 100000).
    init?(reading section: MappingReader) {
        let reader = section.reader
        guard let endpoint = HTTPEndpoint(reading: section, method: .POST, timeout: .seconds(10), idleTimeout: .seconds(10)) else {
            return nil
        }
        self.init(url: endpoint.url)
        self.endpoint = endpoint
        if endpoint.requestTimeout >= .seconds(16) {
            reader.report(section.key("timeout"), section.value("timeout"), "must be below osquery's 16s request deadline, or agents give up before the gateway answers")
        }
        endpoints = section.section("endpoints") { OsqueryEndpoints(reading: $0) } ?? OsqueryEndpoints()
        if let secret = section.section("enroll_secret", { Self.secretSource(reading: $0) }), let secret {
            enrollSecret = secret
        }
        if let headers = section.mapping("identity_headers") {
            func name(_ key: String) -> String? {
                guard let value = headers.string(key) else { return nil }
                guard !value.isEmpty, value.utf8.allSatisfy(Self.isTokenByte) else {
                    reader.report(headers.key(key), headers.value(key), "must be an HTTP header name")
                    return nil
                }
                return value
            }
            identityHeaders = .init(
                fingerprint: name("fingerprint"), subject: name("subject"), serial: name("serial"),
                subjectAlternativeNames: name("sans"))
            headers.finish()
            let lowered = identityHeaders.names.map { $0.lowercased() }
            if Set(lowered).count != lowered.count {
                reader.report(headers.path, headers.node, "two identity headers share a name")
            }
            if lowered.contains(where: Self.reservedHeaders.contains) {
                reader.report(headers.path, headers.node, "must not name a header the gateway sets itself (\(Self.reservedHeaders.sorted().joined(separator: ", ")))")
            }
        }
        if let value = section.duration("refused_key_memory") { refusedKeyMemory = value }
        if let value = section.integer("max_concurrent", in: 1...100_000) { maxConcurrent = value }
        if let value = section.duration("max_concurrent_wait") { maxConcurrentWait = value }
        if let value = section.integer("last_good_configs", in: 1...10_000_000) { lastGoodConfigs = value }
        if endpoint.requestTimeout < .seconds(16), endpoint.requestTimeout + maxConcurrentWait >= .seconds(16) {
            reader.report(section.key("max_concurrent_wait"), section.value("max_concurrent_wait") ?? section.node,
                          "with timeout it must stay below osquery's 16s request deadline, or agents give up before the gateway answers")
        }
    }

    /// Headers every request to the backend gets from the gateway.
    static let reservedHeaders: Set<String> = [
        "authorization", "content-type", "content-length", "host", "user-agent", "accept", "x-forwarded-for",
        "transfer-encoding", "connection",
    ]

    /// RFC 9110 token characters.
    private static func isTokenByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"): return true
        default: return "!#$%&'*+-.^_`|~".utf8.contains(byte)
        }
    }

    /// `enroll_secret`: exactly one of `file` (trimmed, as osquery's `--enroll_secret_path`) or `env`.
    private static func secretSource(reading section: MappingReader) -> EnrollmentService.Configuration.Secret.Source? {
        switch (section.configPath("file"), section.string("env")) {
        case (let file?, nil): return .file(file)
        case (nil, let env?): return .environment(env)
        default:
            section.reader.report(section.path, section.node, "give exactly one of file or env")
            return nil
        }
    }
}
