import ArgumentParser
import Foundation

/// `fleet-sim`: N osquery 5.23 hosts against a gateway, on one event loop thread by default.
///
/// See Benchmarks/README.md ("fleet-sim") for what it emulates and how hosts per core is computed.
@main
struct FleetSimCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fleet-sim",
        abstract: "Emulate a fleet of osquery 5.23 agents against a TLS server and measure what it costs the server.",
        discussion: """
            Fleet mode: every host enrolls and fetches config after a random splay, then polls \
            distributed reads every --distributed-interval and flushes logs every --logger-period, \
            with osquery's retries, backoff and re-enrollment, on a new TLS connection per request, \
            leaving the previous one idle until the next. --storm restarts every host (dropping its \
            node key) within one interval once the fleet is up. --idle N holds N idle TLS connections.

            Handshakes mode: --concurrency workers each loop over new connection, one distributed \
            read, close; reports requests per server CPU second.
            """)

    @Option(help: "Server URL (https://host:port[/prefix]); a name is resolved once, to its first address (prefer an address, with --tls-hostname if needed).")
    var url: String
    @Option(help: "CA certificate (PEM) the server certificate must chain to (osquery --tls_server_certs). Default: the system store.")
    var ca: String?
    @Option(help: "Enroll secret file, trimmed at both ends (osquery --enroll_secret_path).") var secretFile: String?
    @Option(help: "Enroll secret given directly.") var secret: String?
    @Option(help: "Body field holding the secret (osquery --tls_enroll_override).") var secretField = "enroll_secret"
    @Option(help: "Client certificate (PEM), with --client-key (osquery --tls_client_cert).") var clientCert: String?
    @Option(help: "Client key (PEM) (osquery --tls_client_key).") var clientKey: String?
    @Option(help: "Name to verify and send as SNI (osquery --tls_hostname). Default: the URL's host unless it is an address.")
    var tlsHostname: String?
    @Flag(help: "Offer TLS 1.2 only (osquery offers 1.2 and 1.3).") var tls12 = false

    @Option(help: "fleet or handshakes.") var mode: RunMode = .fleet
    @Option(help: "Emulated hosts.") var hosts = 1000
    @Option(help: "Run length (default: splay + 2 distributed intervals, plus the storm window and 60s with --storm; 10s for handshakes).")
    var duration: Interval?
    @Option(help: "Seconds excluded from the steady-state figures (default: the splay).") var warmup: Interval?
    @Option(help: "Hosts start at random moments within this.") var splay = Interval(seconds: 30)
    @Option(help: "osquery --distributed_interval (0: no distributed reads).") var distributedInterval = Interval(seconds: 60)
    @Option(help: "osquery --logger_tls_period.") var loggerPeriod = Interval(seconds: 4)
    @Option(help: "Share of logger periods in which a host has new result lines (0...1).") var logShare = 0.25
    @Option(help: "Result lines (about 330 bytes each) a host gains in such a period.") var logLines = 10
    @Option(help: "osquery --logger_tls_max_lines.") var loggerMaxLines = 1024
    @Option(help: "osquery --logger_tls_backoff_max.") var loggerBackoffMax = Interval(seconds: 3600)
    @Option(help: "osquery --tls_enroll_max_attempts (0: forever).") var enrollMaxAttempts = 12
    @Option(help: "osquery --tls_enroll_max_interval.") var enrollMaxInterval = Interval(seconds: 600)
    @Option(help: "osquery --config_refresh (0: config once at start, osquery's default).") var configRefresh = Interval(seconds: 0)
    @Option(help: "osquery --config_accelerated_refresh.") var configAcceleratedRefresh = Interval(seconds: 300)
    @Option(help: "Deadline of each request, connect to last byte (osquery's is a fixed 16 s).") var timeout = Interval(seconds: 16)
    @Option(help: "Connections a host leaves open between requests: per-component (osquery 5.23), per-host, close.")
    var connections: ConnectionMode = .perComponent
    @Flag(help: "Once every host is enrolled, every host restarts without its node key within --storm-window.") var storm = false
    @Option(help: "Window of the restart storm (default: the distributed interval).") var stormWindow: Interval?
    @Option(help: "Idle TLS connections to hold open before and during the run.") var idle = 0
    @Flag(help: "Open idle connections again when the server closes them.") var idleReopen = false
    @Option(help: "Closed-loop workers in handshakes mode.") var concurrency = 50
    @Option(help: "Node key for handshakes mode instead of enrolling once (e.g. against an nginx baseline).") var nodeKey: String?
    @Option(help: "Server process to read CPU seconds and RSS from (/proc/<pid>).") var serverPid: Int?
    @Option(help: "Event loop threads (hosts are dealt round-robin).") var threads = 1
    @Option(help: "Prefix of host identifiers; give each of several simulator processes its own.") var hostPrefix = "sim"
    @Option(help: "Seed of the splay and log pattern.") var seed: UInt64 = 1
    @Option(help: "osquery --enroll_tls_endpoint.") var enrollPath = "/enroll"
    @Option(help: "osquery --config_tls_endpoint.") var configPath = "/config"
    @Option(help: "osquery --logger_tls_endpoint.") var loggerPath = "/logger"
    @Option(help: "osquery --distributed_tls_read_endpoint.") var readPath = "/distributed/read"
    @Option(help: "osquery --distributed_tls_write_endpoint.") var writePath = "/distributed/write"
    @Flag(help: "Print one JSON object instead of the table.") var json = false
    @Flag(help: "No progress lines on stderr.") var quiet = false

    func validate() throws {
        guard hosts >= 0, idle >= 0, threads >= 1, concurrency >= 1 else {
            throw ValidationError("--hosts and --idle must be 0 or more, --threads and --concurrency 1 or more")
        }
        guard (0...1).contains(logShare), logLines >= 1, loggerMaxLines >= 1, enrollMaxAttempts >= 0 else {
            throw ValidationError("--log-share must be within 0...1, --log-lines and --logger-max-lines at least 1")
        }
        guard mode == .handshakes || hosts + idle > 0 else { throw ValidationError("nothing to do: --hosts and --idle are 0") }
        guard loggerPeriod.seconds > 0, timeout.seconds > 0 else { throw ValidationError("--logger-period and --timeout must be above 0") }
        if let serverPid, !FileManager.default.fileExists(atPath: "/proc/\(serverPid)/stat") {
            throw ValidationError("--server-pid \(serverPid): no such process in /proc")
        }
        for path in [enrollPath, configPath, loggerPath, readPath, writePath] where !path.hasPrefix("/") {
            throw ValidationError("endpoint paths must start with /: \(path)")
        }
    }

    func run() throws {
        let settings = try makeSettings()
        let target = try ServerTarget.make(url: url, tlsHostname: tlsHostname, ca: ca, clientCertificate: clientCert,
                                           clientKey: clientKey, tls12Only: tls12)
        let pid = serverPid.map { String($0) }
        let warnings = fileLimitWarnings(settings)
        if !quiet {
            for warning in warnings { FileHandle.standardError.write(Data("warning: \(warning)\n".utf8)) }
        }
        let report: Report
        switch mode {
        case .fleet:
            let result = try FleetRun(settings: settings, target: target, threads: threads, serverPID: pid, quiet: quiet).run()
            report = ReportBuilder.fleet(result, settings: settings, threads: threads, serverPID: pid, warnings: warnings)
        case .handshakes:
            let handshakeRun = HandshakeRun(settings: settings, target: target, threads: threads, concurrency: concurrency,
                                            nodeKey: nodeKey, serverPID: pid)
            let result = try handshakeRun.run()
            report = ReportBuilder.handshakes(result, settings: settings, threads: threads, serverPID: pid, warnings: warnings)
        }
        let text = try json ? ReportPrinter.json(report) : ReportPrinter.table(report)
        print(text)
    }

    private func makeSettings() throws -> FleetSettings {
        var s = FleetSettings()
        s.hosts = mode == .fleet ? hosts : 0
        s.splay = splay.seconds
        s.distributedInterval = distributedInterval.seconds
        s.loggerPeriod = loggerPeriod.seconds
        s.logShare = logShare
        s.logLines = logLines
        s.loggerMaxLines = loggerMaxLines
        s.loggerBackoffMax = loggerBackoffMax.seconds
        s.enrollMaxAttempts = enrollMaxAttempts
        s.enrollMaxInterval = enrollMaxInterval.seconds
        s.configRefresh = configRefresh.seconds
        s.configAcceleratedRefresh = configAcceleratedRefresh.seconds
        s.timeout = timeout.seconds
        s.connections = connections
        s.storm = storm
        s.stormWindow = stormWindow?.seconds ?? (distributedInterval.seconds > 0 ? distributedInterval.seconds : 60)
        s.idle = mode == .fleet ? idle : 0
        s.idleReopen = idleReopen
        s.secretField = secretField
        s.hostPrefix = hostPrefix
        s.seed = seed
        s.paths = EndpointPaths(enroll: enrollPath, config: configPath, logger: loggerPath,
                                distributedRead: readPath, distributedWrite: writePath)
        if let secretFile {
            let text = try String(contentsOfFile: secretFile, encoding: .utf8)
            s.secret = text.trimmingCharacters(in: .whitespacesAndNewlines)
        } else {
            s.secret = secret ?? ""
        }
        let interval = s.distributedInterval > 0 ? s.distributedInterval : 60
        s.warmup = warmup?.seconds ?? s.splay
        let fleetDefault = s.warmup + 2 * interval + (storm ? s.stormWindow + 60 : 0)
        s.duration = duration?.seconds ?? (mode == .fleet ? fleetDefault : 10)
        return s
    }

    /// Every connection is a file descriptor on both sides: osquery 5.23 leaves up to three idle per
    /// host (one per component), so a large fleet can exceed this process's or the server's limit.
    private func fileLimitWarnings(_ settings: FleetSettings) -> [String] {
        let limit = ProcFS.raiseOpenFileLimit()
        let perHost = switch settings.connections {
        case .perComponent: 3
        case .perHost: 1
        case .close: 0
        }
        let inFlight = mode == .handshakes ? concurrency : max(64, settings.hosts / 20)
        let expected = settings.hosts * perHost + settings.idle + inFlight
        var warnings: [String] = []
        if expected > limit * 9 / 10 {
            warnings.append("up to \(expected) connections open at once (\(perHost) per host + idle + in flight), near or over this process's open-file limit \(limit): expect fd_limit failures; use --connections per-host, fewer hosts, or several fleet-sim processes with distinct --host-prefix")
        }
        if let serverPid, let serverLimit = ProcFS.openFileLimit(String(serverPid)), expected > serverLimit * 9 / 10 {
            warnings.append("up to \(expected) connections, near or over the server's open-file limit \(serverLimit)")
        }
        return warnings
    }
}
