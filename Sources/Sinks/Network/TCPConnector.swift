import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS

/// Opens the long-lived TCP (or TLS) connections of the sinks that speak a protocol of their own
/// (syslog, NATS): one event loop of NIO's shared group, a bounded connect time, TCP keep-alive, and,
/// for TLS, a return only once the handshake has finished, so a wrong CA or a refused client
/// certificate fails the connect instead of the first write.
enum TCPConnector {
    /// Why a connection could not be used.
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    /// Connects to `address`.
    /// - Parameters:
    ///   - tls: when given, TLS runs over the connection (server name from the address unless it is
    ///     an IP, which is then checked against the certificate's IP addresses).
    ///   - timeout: for the TCP connect and, separately, for the TLS handshake.
    ///   - eventLoop: the loop the connection runs on (a caller that must make promises for it
    ///     before connecting picks it).
    ///   - handlers: made on the connection's event loop and added after TLS.
    /// - Throws: connect errors, TLS errors, `Failure` on a handshake timeout.
    static func connect(
        to address: NetworkAddress, tls: NIOSSLContext?, timeout: Duration,
        on eventLoop: any EventLoop = MultiThreadedEventLoopGroup.singleton.next(),
        handlers: @escaping @Sendable () -> [any ChannelHandler] = { [] }
    ) async throws -> any Channel {
        let handshake = eventLoop.makePromise(of: Void.self)
        let serverName = address.hostIsIPAddress ? nil : address.host
        let bootstrap = ClientBootstrap(group: eventLoop)
            .connectTimeout(TimeAmount(timeout))
            .channelOption(ChannelOptions.socketOption(.so_keepalive), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let pipeline = channel.pipeline.syncOperations
                    if let tls {
                        try pipeline.addHandler(try NIOSSLClientHandler(context: tls, serverHostname: serverName))
                        try pipeline.addHandler(TLSHandshakeWaiter(promise: handshake))
                    }
                    for handler in handlers() { try pipeline.addHandler(handler) }
                }
            }
        let channel: any Channel
        do {
            channel = try await bootstrap.connect(host: address.host, port: address.port).get()
        } catch {
            handshake.fail(error)
            throw error
        }
        guard tls != nil else {
            handshake.succeed(())
            return channel
        }
        let deadline = eventLoop.scheduleTask(in: TimeAmount(timeout)) {
            handshake.fail(Failure(description: "TLS handshake with \(address) timed out"))
        }
        defer { deadline.cancel() }
        do {
            try await handshake.futureResult.get()
            if let serverName { try await ServerNameCheck.verify(channel, carries: serverName, peer: "\(address)") }
        } catch {
            channel.close(promise: nil)
            throw error
        }
        return channel
    }

    /// Starts TLS on a connection already open, for a protocol that upgrades after a plain-text
    /// greeting (NATS, after the server's `INFO`), and returns once the handshake finished.
    ///
    /// The TLS handler goes first in the pipeline, so the handlers already there read and write
    /// through it from then on. The caller must not write until this returns.
    /// - Parameters:
    ///   - serverName: sent as SNI and checked against the certificate; nil for an IP address,
    ///     which is checked against the certificate's addresses.
    ///   - peer: the server, for the timeout's message.
    /// - Throws: TLS errors, `Failure` on a timeout or when the connection closes first.
    static func startTLS(on channel: any Channel, context tls: NIOSSLContext, serverName: String?, timeout: Duration, peer: String) async throws {
        let handshake = channel.eventLoop.makePromise(of: Void.self)
        let deadline = channel.eventLoop.scheduleTask(in: TimeAmount(timeout)) {
            handshake.fail(Failure(description: "TLS handshake with \(peer) timed out"))
        }
        defer { deadline.cancel() }
        do {
            try await channel.eventLoop.submit {
                let pipeline = channel.pipeline.syncOperations
                // Added in this order, the TLS handler ends up first and the waiter right after it.
                try pipeline.addHandler(TLSHandshakeWaiter(promise: handshake), position: .first)
                try pipeline.addHandler(try NIOSSLClientHandler(context: tls, serverHostname: serverName), position: .first)
            }.get()
        } catch {
            handshake.fail(error)
            throw error
        }
        try await handshake.futureResult.get()
        if let serverName { try await ServerNameCheck.verify(channel, carries: serverName, peer: peer) }
    }
}

/// Completes `promise` when the TLS handshake finishes, or fails it with the first error or when the
/// connection closes first. Completing a promise twice does nothing, so later events are harmless.
private final class TLSHandshakeWaiter: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private let promise: EventLoopPromise<Void>

    init(promise: EventLoopPromise<Void>) {
        self.promise = promise
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? TLSUserEvent, case .handshakeCompleted = event { promise.succeed(()) }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        promise.fail(error)
        context.fireErrorCaught(error)
    }

    func channelInactive(context: ChannelHandlerContext) {
        promise.fail(TCPConnector.Failure(description: "the server closed the connection during the TLS handshake"))
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        promise.fail(TCPConnector.Failure(description: "the connection was closed during the TLS handshake"))
    }
}
