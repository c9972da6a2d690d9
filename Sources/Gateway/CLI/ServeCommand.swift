import ArgumentParser
import Foundation
import Logging
import Metrics
import Prometheus
import ServiceLifecycle
import UnixSignals

/// `osquery-gateway serve`: runs the gateway until SIGTERM or SIGINT; SIGHUP reloads config sources.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve the osquery TLS remote API (the default command).",
        discussion: """
            With no configuration file anywhere, the first start writes a development setup into ./data \
            (CA, server and client certificates, enroll secret, osquery config, gateway.yaml) and serves it \
            on 127.0.0.1:8443. A configuration with `development: true` gets any of those files that are \
            missing. The osqueryd flags for this gateway are printed at start.

            Start failures exit at once: 78 for a configuration problem (named with its key, line and \
            file), 1 for anything else (such as an address already in use).

            Signals: SIGTERM/SIGINT drain in-flight requests and exit 0; SIGHUP re-reads the configuration \
            file and applies what can change live (see the README), re-reads config sources and reopens \
            log files.
            """)

    @OptionGroup var options: ConfigOption
    @Option(help: ArgumentHelp(
        "Address agents connect to, host:port (overrides `listen` in the configuration).",
        discussion: "For example --listen 0.0.0.0:9443; port 0 picks a free port."))
    var listen: String?

    func run() async throws {
        let configuration = await CommandFailure.exitOnFailure {
            if options.resolvedPath() == nil {
                try DevelopmentSetup.initialize(directory: "data", hostnames: ["localhost", "127.0.0.1", "::1"], listen: listen ?? "127.0.0.1:8443")
            }
            var loaded = try options.load()
            if let listen {
                guard let parsed = ListenAddress(parsing: listen) else {
                    throw CommandFailure.usage("--listen must look like host:port, found \"\(listen)\"")
                }
                loaded.listen = parsed
                loaded.listenFromCommandLine = true
            }
            if loaded.development { try DevelopmentSetup.ensure(loaded) }
            try await loaded.checkServable()
            return loaded
        }
        umask(0o077)
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = Logger.Level(rawValue: configuration.logLevel) ?? .info
            return handler
        }
        let logger = Logger(label: "osquery-gateway")
        OpenFileLimit.raise(logger: logger)
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        let flags = AgentFlags(configuration: configuration)
        let address = configuration.listen
        let services = await CommandFailure.exitOnFailure {
            try await GatewayApplication.build(configuration, logger: logger, metrics: registry) { port in
                let bound = ListenAddress(host: address.host, port: port)
                var flags = flags
                flags.port = port
                logger.notice("serving the osquery TLS API", metadata: ["gw.listen": "\(bound.description)"])
                print("osquery-gateway listening on \(bound.description) (TLS). Point osqueryd at it with:\n")
                print(flags.lines.map { "  " + $0 }.joined(separator: " \\\n") + "\n")
                if let warning = flags.hostnameWarning { print(warning + "\n") }
                fflush(nil)
            }
        }
        let group = ServiceGroup(configuration: .init(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        do {
            try await group.run()
        } catch {
            logger.critical("stopped: \(error)")
            CommandFailure.failed("osquery-gateway stopped: \(error)").exit()
        }
        logger.notice("stopped")
    }
}

extension DevelopmentSetup {
    /// Creates the development files a `development: true` configuration names but which are missing.
    ///
    /// TLS material is made only when none of the certificate, key and client CA exists: replacing
    /// one of them (after a typo in a path, say) would break the trust of every enrolled agent, so a
    /// partial set is left alone and the missing file is reported by `checkServable`.
    static func ensure(_ configuration: GatewayConfiguration) throws {
        let fm = FileManager.default
        let tls = configuration.tls
        let tlsFiles = [tls.certificate, tls.privateKey] + (tls.clientCA.map { [$0] } ?? [])
        if !tlsFiles.contains(where: fm.fileExists(atPath:)) {
            let pki = try DevelopmentPKI()
            let server = try pki.issueServer(hostnames: ["localhost", "127.0.0.1", "::1"])
            try writeIfMissing(tls.certificate, server.certificatePEM, mode: 0o644)
            try writeIfMissing(tls.privateKey, server.privateKeyPEM, mode: 0o600)
            if let ca = tls.clientCA { try writeIfMissing(ca, pki.ca.certificatePEM, mode: 0o644) }
        }
        for secret in configuration.enrollment.secrets {
            if case .file(let path) = secret.source {
                try writeIfMissing(path, NodeKey.generate() + "\n", mode: 0o600)
            }
        }
        for source in configuration.agentConfig.sources {
            if case .file(let path) = source.kind { try writeIfMissing(path, baseOsqueryConfig, mode: 0o644) }
        }
        if case .file(let path)? = configuration.admin?.token {
            try writeIfMissing(path, NodeKey.generate() + "\n", mode: 0o600)
        }
    }

    private static func writeIfMissing(_ path: String, _ text: String, mode: Int) throws {
        let fm = FileManager.default
        if fm.fileExists(atPath: path) { return }
        try fm.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try Data(text.utf8).write(to: URL(fileURLWithPath: path), options: .atomic)
        try fm.setAttributes([.posixPermissions: mode], ofItemAtPath: path)
    }
}
