import Sinks

/// Everything `serve` needs, read once from the YAML file (see `GatewayConfiguration+YAML.swift`)
/// and checked there; every path is already absolute.
///
/// Keys are documented in `Config/gateway.example.yaml`; this type mirrors that file.
struct GatewayConfiguration: Sendable {
    /// Where agents connect.
    struct Listen: Sendable, Equatable {
        var host: String
        var port: Int
    }

    /// Whether and how clients present certificates.
    enum ClientCertificateMode: String, Sendable, CaseIterable {
        /// Never asked for.
        case none
        /// Verified against `client_ca` when presented; agents without one still connect.
        case optional
        /// The handshake fails without a certificate from `client_ca`.
        case required
    }

    struct TLS: Sendable {
        var certificate: String
        var privateKey: String
        var clientCA: String?
        var clientCertificates: ClientCertificateMode
    }

    /// Request paths, as set on the agent with the `*_tls_endpoint` flags.
    struct Endpoints: Sendable {
        var enroll = "/enroll"
        var config = "/config"
        var logger = "/logger"
        var distributedRead = "/distributed/read"
        var distributedWrite = "/distributed/write"
        var carveStart = "/carve/start"
        var carveBlock = "/carve/block"
    }

    /// One accepted enroll secret. Its `name` is recorded with every node that used it.
    struct EnrollSecret: Sendable {
        enum Source: Sendable {
            /// Read from a file and trimmed, as osquery's `--enroll_secret_path`.
            case file(String)
            /// Read from an environment variable as is, as osquery's `--enroll_secret_env`.
            case environment(String)
        }
        var name: String
        var source: Source
        /// Labels given to nodes that enroll with this secret (used by config targeting later).
        var tags: [String] = []
    }

    struct Enrollment: Sendable {
        var secrets: [EnrollSecret] = []
        /// Body key and URL parameter that hold the secret (osquery `--tls_enroll_override`).
        var secretField = "enroll_secret"
        /// A verified client certificate alone may enroll.
        var clientCertificate = false
    }

    struct NodeStore: Sendable {
        var sqlite: String
    }

    /// One place an osquery config comes from.
    struct AgentConfigSource: Sendable {
        struct HTTP: Sendable {
            var url: String
            var method = "GET"
            var headers: [(String, String)] = []
            var body: String?
            var ca: String?
            var clientCertificate: String?
            var clientKey: String?
        }

        enum Kind: Sendable {
            case file(String)
            case directory(String)
            case inline(JSONObject)
            case http(HTTP)
        }

        var name: String
        var kind: Kind
        /// How often it is fetched again (default 10s for files and folders, 60s for HTTP).
        var refresh: Duration?
        var timeout: Duration = .seconds(10)

        /// The file or folder this source reads, if any.
        var path: String? {
            switch kind {
            case .file(let path), .directory(let path): return path
            default: return nil
            }
        }
    }

    struct AgentConfig: Sendable {
        var sources: [AgentConfigSource] = []
        /// Checked in order; a node gets the sources of the first that matches.
        var targets: [AgentConfigTarget] = []
        /// Sources of nodes no target matches (default: every source, in order).
        var defaultSources: [String]?
        var collisions: ConfigMerger.CollisionPolicy = .rename
        var maxSize = 1 << 20
    }

    /// One log destination: its kind with its checked settings, and the records it takes.
    struct Sink: Sendable {
        enum Kind: Sendable {
            case file(FileSink.Configuration)
            case zstd(ZstdArchiveSink.Configuration)
            case http(HTTPForwarderSink.Configuration)
        }
        var name: String
        var kind: Kind
        var match = SinkMatch()

        /// The folder a file or zstd sink writes to.
        var directory: String? {
            switch kind {
            case .file(let file): return file.directory
            case .zstd(let zstd): return zstd.directory
            case .http: return nil
            }
        }
    }

    /// The durable queue between agents and sinks (see `Spool`).
    struct SpoolSettings: Sendable {
        var directory: String
        var maxSize = 1 << 30
        var segmentSize = 64 << 20
        var commitWindow: Duration = .milliseconds(2)
        /// An exact resend of a stored batch within this window is not stored again.
        var resendWindow: Duration = .seconds(120)
    }

    /// Guards against hostile or broken clients.
    struct Limits: Sendable {
        /// Largest request body accepted on the wire.
        var maxBody = 64 << 20
        /// Largest body after gzip inflation (gzip bombs stop here).
        var maxInflatedBody = 256 << 20
        /// Idle connections, and requests that stall, are closed after this long.
        var idleTimeout: Duration = .seconds(75)
        /// A whole request body must arrive within this long (a sender dribbling a large body is cut off).
        var bodyTimeout: Duration = .seconds(60)
        /// Bytes of request bodies held at once by every request together, past each request's first
        /// 64 KiB; over it, large bodies get a 503 error body (the agent retries later).
        var inFlightBytes = 1 << 30
        /// Pending connections the kernel queues before accepting (a restarting fleet reconnects at once).
        var backlog = 4096
    }

    var listen = Listen(host: "127.0.0.1", port: 8443)
    var tls: TLS
    var endpoints = Endpoints()
    var dataDir: String
    var enrollment = Enrollment()
    var nodeStore: NodeStore
    var agentConfig = AgentConfig()
    var sinks: [Sink] = []
    var spool: SpoolSettings
    var limits = Limits()
    var logLevel = "info"
    /// Where `/metrics` (Prometheus) and `/health` are served over plain HTTP; nil: not served.
    var admin: Listen?
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
        var line = lines[key]
        var parent = key
        while line == nil, let cut = parent.lastIndex(where: { $0 == "." || $0 == "[" }) {
            parent = String(parent[..<cut])
            line = lines[parent]
        }
        return ConfigurationProblem(key: key, line: line, message: message)
    }
}
