import Foundation
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOExtras
import NIOHTTP1
import NIOHTTPTypesHTTP1
import NIOSSL
import NIOPosix
import ServiceLifecycle

/// The agent listener: accepts TLS connections and serves each from a plain NIO channel pipeline
/// (TLS, the HTTP/1 codec, `AgentConnectionHandler`) with the gateway's router.
///
/// Why not Hummingbird's `Server`: it runs every connection as a child of one discarding task
/// group, and the Swift 6.3 runtime keeps a group's children in a singly linked list that it walks
/// to remove the child that finished (swiftlang/swift#71212). osquery 5.23 opens a new connection
/// for every request and leaves the previous one idle (docs/protocol.md#connections), so a fleet
/// holds one to three idle connections per host, and each request's close then cost time in
/// proportion to the whole fleet. Here a connection is no task at all (a request is one, while it
/// is answered), so opening and closing one costs the same with ten connections open or a hundred
/// thousand, and an idle one holds no task stack or async-channel buffers. Graceful shutdown stops
/// accepting, asks every connection to finish its request and close (NIO's quiescing helper), and
/// returns once the last one has closed.
struct AgentListener: Service {
    struct Configuration: Sendable {
        var address: ListenAddress
        /// Pending connections the kernel queues before accepting.
        var backlog: Int
        /// Time a connection may stay idle between requests before it is closed.
        var idleTimeout: Duration
        /// Every connection starts with a PROXY protocol header (v1 or v2) naming the agent's
        /// address (`listen.proxy_protocol`, behind HAProxy's `send-proxy`); one without is closed.
        var proxyProtocol = false
    }

    let configuration: Configuration
    let logger: Logger
    /// Called with the bound port once the listener accepts (port 0 picks one).
    let onServerRunning: @Sendable (Int) async -> Void
    private let tls: NIOSSLContext
    private let respond: AgentConnectionHandler.Responder
    private let extraHandlers: @Sendable () -> [any ChannelHandler]

    /// - Parameters:
    ///   - router: the osquery routes; every request gets a `GatewayRequestContext`.
    ///   - nodeAPI: turns osquery's `--tls_node_api` paths into ordinary ones before routing.
    ///   - extraHandlers: per-connection handlers placed after the HTTP codec, before the
    ///     connection's idle-time and request handling.
    init(
        configuration: Configuration, router: Router<GatewayRequestContext>, nodeAPI: NodeAPIPath, tls: TLSConfiguration,
        extraHandlers: @escaping @Sendable () -> [any ChannelHandler],
        logger: Logger, onServerRunning: @escaping @Sendable (Int) async -> Void
    ) throws {
        self.configuration = configuration
        self.logger = logger
        self.onServerRunning = onServerRunning
        self.extraHandlers = extraHandlers
        self.tls = try NIOSSLContext(configuration: tls)
        let responder = router.buildResponder()
        let proxyProtocol = configuration.proxyProtocol
        respond = { request, channel in
            var context = GatewayRequestContext(source: .init(channel: channel, logger: logger))
            context.proxyProtocol = proxyProtocol
            let request = nodeAPI.rewrite(request, context: &context)
            do {
                return try await responder.respond(to: request, context: context)
            } catch let error as HTTPParserError {
                // The body broke HTTP framing mid-way, or the agent left (the middleware has counted it).
                return ProtocolErrorBodyHandler.response(for: error)
            } catch let error as ChannelError where error == .eof || error == .ioOnClosedChannel {
                return ProtocolErrorBodyHandler.response(for: .invalidEOFState)
            } catch {
                // Routes render their own failures (OsqueryErrorMiddleware); this is the last resort,
                // still a body osquery reads as a failure rather than an empty one.
                let id = UUID().uuidString.lowercased()
                logger.error("request failed outside the routes", metadata: ["gw.error_id": "\(id)", "gw.error": "\(error)"])
                return OsqueryError.internal(id: id).response
            }
        }
    }

    func run() async throws {
        let quiescing = ServerQuiescingHelper(group: MultiThreadedEventLoopGroup.singleton)
        let tls = self.tls, respond = self.respond, extraHandlers = self.extraHandlers, logger = self.logger
        let idleTimeout = configuration.idleTimeout
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: numericCast(configuration.backlog))
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .serverChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(quiescing.makeServerChannelHandler(channel: channel))
                }
            }
            .childChannelInitializer { [proxyProtocol = configuration.proxyProtocol] channel in
                channel.eventLoop.makeCompletedFuture {
                    let pipeline = channel.pipeline.syncOperations
                    // The PROXY protocol header comes before the TLS handshake's first byte.
                    if proxyProtocol { try pipeline.addHandler(ProxyProtocolDecoder()) }
                    try pipeline.addHandler(NIOSSLServerHandler(context: tls))
                    try pipeline.configureHTTPServerPipeline(
                        withPipeliningAssistance: true, withErrorHandling: false, withOutboundHeaderValidation: false)
                    try pipeline.addHandler(HTTP1ToHTTPServerCodec(secure: true))
                    try pipeline.addHandlers(extraHandlers())
                    try pipeline.addHandler(HTTPConnectionStateHandler(idleTimeout: idleTimeout, logger: logger))
                    try pipeline.addHandler(AgentConnectionHandler(responder: respond))
                }
            }
            .bind(host: configuration.address.host, port: configuration.address.port).get()
        let closed = server.eventLoop.makePromise(of: Void.self)
        await withTaskCancellationHandler {
            await withGracefulShutdownHandler {
                await onServerRunning(server.localAddress?.port ?? configuration.address.port)
                try? await server.closeFuture.get()
                try? await closed.futureResult.get()
            } onGracefulShutdown: {
                quiescing.initiateShutdown(promise: closed)
            }
        } onCancel: {
            quiescing.initiateShutdown(promise: closed)
        }
    }
}
