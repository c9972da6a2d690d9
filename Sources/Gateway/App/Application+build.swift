import Foundation
import Hummingbird
import HummingbirdTLS
import Logging
import NIOCore
import NIOSSL
import ServiceLifecycle
import Sinks
import UnixSignals

/// Wires a gateway from its configuration: stores, services, routes and the TLS server.
///
/// Services are returned in dependency order (later ones use earlier ones); a `ServiceGroup` shuts
/// them down in reverse, so the server stops taking requests first, then last-seen times are flushed,
/// then log files are closed.
enum GatewayApplication {
    /// - Parameters:
    ///   - configuration: a checked configuration whose files exist.
    ///   - handleSignals: reload config sources on SIGHUP (off in tests).
    ///   - injectedStore: a node store to use instead of the configured one (tests inject failures).
    ///   - onServerRunning: called with the bound port once the server listens (port 0 picks one).
    static func build(
        _ configuration: GatewayConfiguration,
        logger: Logger,
        handleSignals: Bool = true,
        store injectedStore: (any NodeStore)? = nil,
        onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }
    ) throws -> [any Service] {
        let store = try injectedStore ?? SQLiteNodeStore(path: configuration.nodeStore.sqlite)
        let lastSeen = LastSeenRecorder(logger: logger)
        lastSeen.attach(store)
        let authenticator = NodeAuthenticator(
            store: store, certificateEnrollment: configuration.enrollment.clientCertificate, lastSeen: lastSeen)
        let enrollment = EnrollmentService(
            secrets: try EnrollSecretVerifier(configuration: configuration.enrollment.secrets),
            store: store, authenticator: authenticator,
            certificateEnrollment: configuration.enrollment.clientCertificate, logger: logger)
        let agentConfig = AgentConfigService(
            sources: configuration.agentConfig.sources.map { FileConfigSource(name: $0.name, path: $0.file) }, logger: logger)
        let pipeline = LogPipeline(sinks: try configuration.sinks.map { sink in
            switch sink.kind {
            case .file: return try FileSink(configuration: .init(name: sink.name, directory: sink.directory))
            }
        })

        let limits = configuration.limits
        let routes = OsqueryRoutes(
            endpoints: configuration.endpoints,
            smallBodies: RequestBodyReader(maxBody: min(limits.maxBody, 1 << 20), maxInflated: min(limits.maxInflatedBody, 4 << 20)),
            largeBodies: RequestBodyReader(maxBody: limits.maxBody, maxInflated: limits.maxInflatedBody),
            secretField: configuration.enrollment.secretField,
            certificatesInUse: configuration.tls.clientCertificates != .none,
            enrollment: enrollment, authenticator: authenticator, agentConfig: agentConfig, pipeline: pipeline, logger: logger)

        let router = Router(context: GatewayRequestContext.self)
        router.add(middleware: OsqueryErrorMiddleware())
        router.add(middleware: SecretParameterMiddleware(field: configuration.enrollment.secretField))
        routes.register(on: router)

        let tls = try TLSConfiguration.gateway(configuration.tls)
        let idle = limits.idleTimeout.components
        let app = Application(
            router: router,
            server: try .tls(
                .http1(configuration: .init(idleTimeout: .nanoseconds(idle.seconds * 1_000_000_000 + idle.attoseconds / 1_000_000_000))),
                tlsConfiguration: tls),
            configuration: .init(address: .hostname(configuration.listen.host, port: configuration.listen.port), serverName: nil),
            onServerRunning: { channel in await onServerRunning(channel.localAddress?.port ?? 0) },
            logger: logger)

        var services: [any Service] = [PipelineService(pipeline: pipeline), lastSeen]
        if handleSignals { services.append(HangupReloader(agentConfig: agentConfig, logger: logger)) }
        services.append(app)
        return services
    }
}

/// Closes the log pipeline's files after everything else has stopped.
struct PipelineService: Service {
    let pipeline: LogPipeline

    func run() async throws {
        try? await gracefulShutdown()
        await pipeline.close()
    }
}

/// Re-reads config sources on SIGHUP.
struct HangupReloader: Service {
    let agentConfig: AgentConfigService
    let logger: Logger

    func run() async throws {
        for await _ in await UnixSignalsSequence(trapping: .sighup).cancelOnGracefulShutdown() {
            logger.info("SIGHUP: reloading config sources")
            agentConfig.reload()
        }
    }
}
