import Foundation
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import Logging
import NIOCore
import NIOHTTP1
import NIOSSL
import Prometheus
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
    ///   - registry: where metrics are collected, served on `admin.listen` when that is configured.
    ///   - onServerRunning: called with the bound port once the server listens (port 0 picks one).
    static func build(
        _ configuration: GatewayConfiguration,
        logger: Logger,
        handleSignals: Bool = true,
        store injectedStore: (any NodeStore)? = nil,
        metrics registry: PrometheusCollectorRegistry? = nil,
        onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }
    ) async throws -> [any Service] {
        let store: any NodeStore
        // A shared store owns a connection pool, closed after the last write (the last-seen flush).
        var closeStore: (@Sendable () async -> Void)?
        if let injectedStore {
            store = injectedStore
        } else {
            switch configuration.nodeStore {
            case .sqlite(let sqlite):
                store = try SQLiteNodeStore(path: sqlite.path)
            case .postgres(let postgres):
                let shared = try await PostgresNodeStore.open(postgres, logger: logger)
                logger.info("node store opened", metadata: ["gw.store": "\(postgres.endpoint)"])
                store = shared
                closeStore = { await shared.shutdown() }
            }
        }
        let lastSeen = LastSeenRecorder(store: store, logger: logger)
        let upstream = try configuration.upstream.map { try Upstream(configuration: $0, dataDir: configuration.dataDir, logger: logger) }
        let authenticator = NodeAuthenticator(
            store: store, certificateEnrollment: configuration.enrollment.clientCertificate, lastSeen: lastSeen,
            unknownKeys: upstream.map { UpstreamKeyLearner(upstream: $0, store: store) as any UnknownNodeKeys })
        let upstreamNodes = upstream.map { UpstreamNodes(upstream: $0, store: store, authenticator: authenticator) }
        let secrets = EnrollSecrets(try EnrollSecretVerifier(configuration: configuration.enrollment.secrets))
        let enrollment = EnrollmentService(
            secrets: secrets,
            store: store, authenticator: authenticator,
            certificateEnrollment: configuration.enrollment.clientCertificate, logger: logger,
            forwarder: upstream.map { UpstreamEnrollment(upstream: $0, secretField: configuration.enrollment.secretField) as any EnrollmentForwarder })
        let agentConfig = try AgentConfigService(
            configuration: configuration.agentConfig, tagsBySecret: configuration.tagsBySecret, logger: logger)
        await agentConfig.refresh(force: true)
        let pipeline = try LogPipeline.make(
            spool: configuration.spool, sinks: configuration.sinks, deadLetterDirectory: configuration.dataDir + "/deadletter",
            upstream: upstreamNodes, logger: logger)
        for line in pipeline.spool.recoveryReport { logger.warning("spool recovery: \(line)") }

        // Campaigns live where the nodes do: beside a shared node store, every gateway serves them.
        let sharedStore = store as? PostgresNodeStore
        let campaignStore: any CampaignStore
        if let sharedStore {
            campaignStore = PostgresCampaignStore(pool: sharedStore.pool)
        } else {
            campaignStore = try SQLiteCampaignStore(path: configuration.campaigns.path)
        }
        let campaigns = CampaignService(
            configuration: configuration.campaigns, store: campaignStore,
            nodes: store, tagsBySecret: configuration.tagsBySecret, logger: logger)
        try await campaigns.restore()
        // Gateways sharing the store keep each other's caches current (key revocations,
        // re-enrollments, campaigns created or cancelled elsewhere).
        let control = sharedStore.map { shared in
            PostgresControlChannel(
                configuration: shared.configuration.control, nodes: shared, authenticator: authenticator, campaigns: campaigns,
                logger: logger)
        }
        // Gateways sharing the database share carves too: one carve's blocks come through all of them.
        let carveStore: any CarveStore = try sharedStore.map { PostgresCarveStore(pool: $0.pool) } ?? SQLiteCarveStore(path: configuration.carves.path)
        // Blocks must fit an agent request body, so the largest block follows limits.max_body.
        let carves = CarveService(
            configuration: configuration.carves, store: carveStore, campaigns: campaigns.store, maxBlockBody: configuration.limits.maxBody, logger: logger)

        let limits = configuration.limits
        let budget = BodyBudget(limit: limits.inFlightBytes)
        let routes = OsqueryRoutes(
            endpoints: configuration.endpoints,
            smallBodies: RequestBodyReader(
                maxBody: min(limits.maxBody, 1 << 20), maxInflated: min(limits.maxInflatedBody, 4 << 20),
                timeout: limits.bodyTimeout, budget: budget),
            largeBodies: RequestBodyReader(
                maxBody: limits.maxBody, maxInflated: limits.maxInflatedBody, timeout: limits.bodyTimeout, budget: budget),
            secretField: configuration.enrollment.secretField,
            certificatesInUse: configuration.tls.clientCertificates != .none,
            enrollment: enrollment, authenticator: authenticator, agentConfig: agentConfig,
            ingest: Ingest(pipeline: pipeline, admission: IngestAdmission(
                configuration: .init(
                    highWater: Int(Double(configuration.spool.maxSize) * limits.spoolHighWater),
                    maxConcurrent: limits.maxConcurrentIngest),
                spool: pipeline.spool)),
            upstream: upstreamNodes.map { nodes in
                UpstreamEndpoints(config: UpstreamConfig(nodes: nodes, agentConfig: agentConfig), passThrough: UpstreamPassThrough(nodes: nodes))
            },
            campaigns: campaigns,
            carves: carves)

        let router = Router(context: GatewayRequestContext.self)
        router.add(middleware: OsqueryErrorMiddleware())
        router.add(middleware: SecretParameterMiddleware(field: configuration.enrollment.secretField))
        routes.register(on: router)

        let identity = try ServingIdentity(certificate: configuration.tls.certificate, privateKey: configuration.tls.privateKey)
        let tls = try AgentTLS.serverConfiguration(configuration.tls, identity: identity)
        let handshakes = TLSHandshakeStats(logger: logger)
        let agentListener = try AgentListener(
            configuration: .init(
                address: configuration.listen, backlog: limits.backlog, idleTimeout: limits.idleTimeout,
                proxyProtocol: configuration.proxyProtocol),
            router: router, nodeAPI: NodeAPIPath(endpoints: configuration.endpoints), tls: tls,
            extraHandlers: { [ProtocolErrorBodyHandler(), TLSHandshakeObserver(stats: handshakes)] },
            logger: logger, onServerRunning: onServerRunning)

        var services: [any Service] = [ShutdownAction { await pipeline.close() }, lastSeen, agentConfig, campaigns, carves]
        if let control { services.append(control) }
        services.append(pipeline.delivery)
        let reloader = ConfigurationReloader(
            running: configuration,
            live: .init(identity: identity, secrets: secrets, agentConfig: agentConfig, pipeline: pipeline, upstream: upstreamNodes),
            listensForSignals: handleSignals, logger: logger)
        services.append(reloader)
        services.insert(ShutdownAction { for source in agentConfig.sources { await (source as? HTTPConfigSource)?.shutdown() } }, at: 0)
        if let upstream { services.insert(ShutdownAction { await upstream.shutdown() }, at: 0) }
        services.append(NamedService("agent listener on \(configuration.listen.description)", agentListener))
        if let admin = configuration.admin {
            let api = AdminAPI(
                credentials: AdminCredentials(token: try admin.token.map { try AdminToken(source: $0) }, tls: admin.tls),
                nodes: NodeRoutes(store: store, authenticator: authenticator),
                queries: QueryRoutes(campaigns: campaigns),
                carves: CarveRoutes(carves: carves))
            services.append(NamedService(
                "admin listener on \(admin.listen)",
                try AdminServer.make(
                    listen: admin.listen, tls: admin.tls, registry: registry, agentConfig: agentConfig, pipeline: pipeline, api: api,
                    logger: logger)))
        }
        services.append(ShutdownAction { logger.notice("shutting down: draining in-flight requests, then flushing sinks") })
        if let closeStore { services.insert(ShutdownAction(action: closeStore), at: 0) }
        return services
    }
}

/// A service whose failure names it: "agent listener on 127.0.0.1:8443 failed: bind(...): Address
/// already in use" rather than NIO's bare `bind(descriptor:ptr:bytes:)` error.
struct NamedService: Service, CustomStringConvertible {
    let description: String
    let service: any Service

    init(_ description: String, _ service: any Service) {
        self.description = description
        self.service = service
    }

    struct Failure: Error, CustomStringConvertible {
        var service: String
        var error: any Error
        var description: String { "\(service) failed: \(error)" }
    }

    func run() async throws {
        do {
            try await service.run()
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            throw Failure(service: description, error: error)
        }
    }
}

/// Runs `action` once the group shuts down (after every later service has stopped).
struct ShutdownAction: Service {
    let action: @Sendable () async -> Void

    func run() async throws {
        try? await gracefulShutdown()
        await action()
    }
}
