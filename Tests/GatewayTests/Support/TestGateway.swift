import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import Prometheus
import ServiceLifecycle
@testable import Gateway
@testable import Sinks

/// A real gateway serving TLS on 127.0.0.1 with port 0, with its own data folder and certificates.
final class TestGateway: @unchecked Sendable {
    let directory: String
    let pki: TestPKI
    let secret = "test-secret-\(UUID().uuidString.prefix(8))"
    var configuration: GatewayConfiguration
    private(set) var port = 0
    /// The running services, for tests that look inside one (the invalidation channel).
    private(set) var services: [any Service] = []
    private var group: ServiceGroup?
    private var task: Task<Void, any Error>?

    var logsDirectory: String { configuration.sinks[0].directory! }
    var baseURL: String { "https://127.0.0.1:\(port)" }

    /// Builds a configuration; `modify` may change it before the server starts.
    init(clientCertificates: AgentTLS.ClientCertificateMode = .optional) throws {
        // The metrics system first: a counter made before it is bootstrapped counts nothing, ever.
        _ = testMetrics
        directory = makeTemporaryDirectory()
        pki = try TestPKI(directory: directory + "/tls")
        try Data((secret + "\n").utf8).write(to: URL(fileURLWithPath: directory + "/secret.txt"))
        try Data(Self.osqueryConfig.utf8).write(to: URL(fileURLWithPath: directory + "/osquery.conf"))
        let yaml = """
            listen: 127.0.0.1:0
            data_dir: data
            tls:
              certificate: tls/server.pem
              private_key: tls/server.key
              client_ca: tls/ca.pem
              client_certificates: \(clientCertificates.rawValue)
            enrollment:
              secrets:
                - { name: default, file: secret.txt }
            agent_config:
              sources:
                - { name: base, file: osquery.conf }
            limits:
              max_body: 1MiB
              max_inflated_body: 4MiB
              idle_timeout: 30s  # longer than a loaded machine pauses between two requests of a test
            """
        configuration = try GatewayConfiguration.parse(yaml: yaml, baseDirectory: directory, environment: [:])
    }

    static let osqueryConfig = """
        {
          // comment lines are allowed, as osquery allows them
          "schedule": {"uptime": {"query": "SELECT * FROM uptime;", "interval": 60}},
          "options": {"logger_tls_period": 5}
        }
        """

    /// Starts serving; returns once the port is bound.
    func start(store: (any NodeStore)? = nil, metrics: PrometheusCollectorRegistry? = nil, logs: LogCapture? = nil) async throws {
        var logger = logs.map { capture in Logger(label: "test-gateway") { _ in capture } } ?? Logger(label: "test-gateway")
        logger.logLevel = logs == nil ? .warning : .trace
        let portBox = NIOLockedValueBox<CheckedContinuation<Int, Never>?>(nil)
        let services = try await GatewayApplication.build(configuration, logger: logger, handleSignals: false, store: store, metrics: metrics) { port in
            portBox.withLockedValue { $0?.resume(returning: port); $0 = nil }
        }
        self.services = services
        let group = ServiceGroup(configuration: .init(services: services, logger: logger))
        self.group = group
        port = await withCheckedContinuation { continuation in
            portBox.withLockedValue { $0 = continuation }
            task = Task { try await group.run() }
        }
    }

    /// With a PostgreSQL node store: the channel that keeps this gateway's caches current.
    var controlChannel: PostgresControlChannel? {
        services.first { $0 is PostgresControlChannel } as? PostgresControlChannel
    }

    /// Drains and stops the server.
    func stop() async throws {
        await group?.triggerGracefulShutdown()
        try await task?.value
        group = nil
        task = nil
    }

    /// Lines of one log file in the file sink, waiting up to `timeout` for at least `count` of them
    /// (sinks receive records from the spool shortly after the agent's batch was acknowledged).
    func waitForLines(_ file: String, count: Int, timeout: Duration = .seconds(10)) async -> [String] {
        let deadline = ContinuousClock.now + timeout
        var lines = logLines(file)
        while lines.count < count && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20))
            lines = logLines(file)
        }
        return lines
    }

    /// Every record durable in the spool right now, read straight from its segment files.
    func spooledRecords() throws -> [LogRecord] {
        let directory = configuration.spool.directory
        var records: [LogRecord] = []
        for name in try FileManager.default.contentsOfDirectory(atPath: directory).sorted() where name.hasSuffix(".seg") {
            var buffer = ByteBuffer(bytes: try Data(contentsOf: URL(fileURLWithPath: directory + "/" + name)))
            while case .records(let decoded, let length) = SpoolFrame.decode(buffer) {
                records += decoded
                buffer.moveReaderIndex(forwardBy: length)
            }
        }
        return records
    }

    /// Lines of one log file in the file sink.
    func logLines(_ file: String) -> [String] {
        guard let data = FileManager.default.contents(atPath: logsDirectory + "/" + file) else { return [] }
        return String(decoding: data, as: UTF8.self).split(separator: "\n").map(String.init)
    }
}

/// Runs `body` against a started gateway and always stops it.
func withGateway(
    clientCertificates: AgentTLS.ClientCertificateMode = .optional,
    configure: (TestGateway) throws -> Void = { _ in },
    store: (any NodeStore)? = nil,
    _ body: (TestGateway) async throws -> Void
) async throws {
    let gateway = try TestGateway(clientCertificates: clientCertificates)
    try configure(gateway)
    try await gateway.start(store: store)
    do {
        try await body(gateway)
    } catch {
        try? await gateway.stop()
        throw error
    }
    try await gateway.stop()
}

/// Keeps every log line (message and metadata) a gateway writes, to check what never appears in logs.
struct LogCapture: LogHandler, @unchecked Sendable {
    let lines = NIOLockedValueBox<[String]>([])
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let all = metadata.merging(event.metadata ?? [:]) { $1 }
        lines.withLockedValue { $0.append("\(event.message) \(all)") }
    }
}
