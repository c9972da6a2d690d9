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

            Signals: SIGTERM/SIGINT drain in-flight requests and exit 0; SIGHUP re-reads config sources \
            and reopens log files.
            """)

    @OptionGroup var options: ConfigOption

    func run() async throws {
        var configuration: GatewayConfiguration
        do {
            if options.resolvedPath() == nil {
                try DevelopmentSetup.initialize(directory: "data", hostnames: ["localhost", "127.0.0.1", "::1"], listen: "127.0.0.1:8443")
            }
            configuration = try options.load()
            if configuration.development { try DevelopmentSetup.ensure(configuration) }
            try configuration.checkFiles()
        } catch let failure as CommandFailure {
            failure.exit()
        } catch let error as ConfigurationError {
            CommandFailure.configuration(error.description).exit()
        }
        umask(0o077)
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = Logger.Level(rawValue: configuration.logLevel) ?? .info
            return handler
        }
        let logger = Logger(label: "osquery-gateway")
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        let flags = AgentFlags(configuration: configuration).lines
        let listen = configuration.listen.description
        let services: [any Service]
        do {
            services = try await GatewayApplication.build(configuration, logger: logger, metrics: registry) { port in
                print("osquery-gateway listening on \(listen) (TLS). Point osqueryd at it with:\n")
                print(flags.map { "  " + $0 }.joined(separator: " \\\n") + "\n")
                fflush(nil)
            }
        } catch let error as ConfigurationError {
            CommandFailure.configuration(error.description).exit()
        }
        let group = ServiceGroup(configuration: .init(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }
}

extension DevelopmentSetup {
    /// Creates the development files a `development: true` configuration names but which are missing.
    static func ensure(_ configuration: GatewayConfiguration) throws {
        let fm = FileManager.default
        let tls = configuration.tls
        if !fm.fileExists(atPath: tls.certificate) || !fm.fileExists(atPath: tls.privateKey) {
            let pki = try DevelopmentPKI()
            let server = try pki.issueServer(hostnames: ["localhost", "127.0.0.1", "::1"])
            try writeIfMissing(tls.certificate, server.certificatePEM, mode: 0o644, replace: true)
            try writeIfMissing(tls.privateKey, server.privateKeyPEM, mode: 0o600, replace: true)
            if let ca = tls.clientCA { try writeIfMissing(ca, pki.ca.certificatePEM, mode: 0o644, replace: true) }
        }
        for secret in configuration.enrollment.secrets {
            if case .file(let path) = secret.source {
                try writeIfMissing(path, NodeKey.generate() + "\n", mode: 0o600)
            }
        }
        for source in configuration.agentConfig.sources {
            if case .file(let path) = source.kind { try writeIfMissing(path, baseOsqueryConfig, mode: 0o644) }
        }
    }

    private static func writeIfMissing(_ path: String, _ text: String, mode: Int, replace: Bool = false) throws {
        let fm = FileManager.default
        if fm.fileExists(atPath: path) && !replace { return }
        try fm.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try Data(text.utf8).write(to: URL(fileURLWithPath: path), options: .atomic)
        try fm.setAttributes([.posixPermissions: mode], ofItemAtPath: path)
    }
}
