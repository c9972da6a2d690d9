import Foundation
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import Logging
import NIOCore
import NIOExtras
import NIOHTTP1
import NIOPosix
import ServiceLifecycle

/// The agent listener: accepts TLS connections and serves each with Hummingbird's HTTP/1 child
/// channel and the gateway's router, without making the connections children of one task group.
///
/// Why not Hummingbird's `Server`: it runs every connection as a child of one discarding task
/// group, and the Swift 6.3 runtime keeps a group's children in a singly linked list that it walks
/// to remove the child that finished (swiftlang/swift#71212). osquery 5.23 opens a new connection
/// for every request and leaves the previous one idle (docs/protocol.md#connections), so a fleet
/// holds one to three idle connections per host, and each request's close then cost time in
/// proportion to the whole fleet. Here each connection is an unstructured task counted by a
/// `ConnectionCount`: starting and finishing one costs the same with ten connections open or a
/// hundred thousand. Graceful shutdown stops accepting, asks every connection to finish its
/// request and close (NIO's quiescing helper), and returns once the count reaches zero.
struct AgentListener: Service {
    struct Configuration: Sendable {
        var address: ListenAddress
        /// Pending connections the kernel queues before accepting.
        var backlog: Int
        /// Every connection starts with a PROXY protocol header (v1 or v2) naming the agent's
        /// address (`listen.proxy_protocol`, behind HAProxy's `send-proxy`); one without is closed.
        var proxyProtocol = false
    }

    let configuration: Configuration
    let childChannel: TLSChannel<HTTP1Channel>
    let logger: Logger
    /// Called with the bound port once the listener accepts (port 0 picks one).
    let onServerRunning: @Sendable (Int) async -> Void

    /// - Parameters:
    ///   - router: the osquery routes; every request gets a `GatewayRequestContext`.
    ///   - http1: the HTTP/1 settings (idle timeout, extra channel handlers).
    init(
        configuration: Configuration, router: Router<GatewayRequestContext>, http1: HTTP1Channel.Configuration,
        tls: TLSConfiguration, logger: Logger, onServerRunning: @escaping @Sendable (Int) async -> Void
    ) throws {
        self.configuration = configuration
        self.logger = logger
        self.onServerRunning = onServerRunning
        let responder = router.buildResponder()
        let proxyProtocol = configuration.proxyProtocol
        let http = HTTP1Channel(responder: { request, writer, channel in
            var context = GatewayRequestContext(source: .init(channel: channel, logger: logger))
            context.proxyProtocol = proxyProtocol
            let response: Response
            do {
                response = try await responder.respond(to: request, context: context)
            } catch let error as HTTPParserError {
                throw error
            } catch {
                // Routes render their own failures (OsqueryErrorMiddleware); this is the last resort,
                // still a body osquery reads as a failure rather than an empty one.
                let id = UUID().uuidString.lowercased()
                logger.error("request failed outside the routes", metadata: ["gw.error_id": "\(id)", "gw.error": "\(error)"])
                response = try OsqueryError.internal(id: id).response(from: request, context: context)
            }
            try await writer.write(response: response.head, body: response.body)
        }, configuration: http1)
        childChannel = try TLSChannel(http, tlsConfiguration: tls)
    }

    func run() async throws {
        let quiescing = ServerQuiescingHelper(group: MultiThreadedEventLoopGroup.singleton)
        let bootstrap = ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: numericCast(configuration.backlog))
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .serverChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(quiescing.makeServerChannelHandler(channel: channel))
                }
            }
        let childChannel = self.childChannel
        let logger = self.logger
        let proxyProtocol = configuration.proxyProtocol
        let server = try await bootstrap.bind(host: configuration.address.host, port: configuration.address.port) { channel in
            Self.setup(channel, childChannel: childChannel, proxyProtocol: proxyProtocol, logger: logger)
        }
        let connections = ConnectionCount()
        await withTaskCancellationHandler {
            await withGracefulShutdownHandler {
                await onServerRunning(server.channel.localAddress?.port ?? configuration.address.port)
                do {
                    try await server.executeThenClose { inbound in
                        for try await connection in inbound {
                            connections.opened()
                            Task {
                                await childChannel.handle(value: connection, logger: logger)
                                connections.closed()
                            }
                        }
                    }
                } catch {
                    logger.debug("agent listener stopped accepting", metadata: ["gw.error": "\(error)"])
                }
                await connections.drained()
            } onGracefulShutdown: {
                quiescing.initiateShutdown(promise: nil)
            }
        } onCancel: {
            quiescing.initiateShutdown(promise: nil)
        }
    }

    /// A new connection's pipeline: the PROXY protocol decoder first when the balancer sends the
    /// header (it must see the bytes before TLS does), then TLS and HTTP/1.
    static func setup(
        _ channel: any Channel, childChannel: TLSChannel<HTTP1Channel>, proxyProtocol: Bool, logger: Logger
    ) -> EventLoopFuture<TLSChannel<HTTP1Channel>.Value> {
        guard proxyProtocol else { return childChannel.setup(channel: channel, logger: logger) }
        return channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.addHandler(ProxyProtocolDecoder())
        }.flatMap {
            childChannel.setup(channel: channel, logger: logger)
        }
    }
}
