import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS

/// `--idle N`: connections that complete a full handshake and then send nothing, held open for the
/// whole run, to measure what idle connections cost the server (osquery 5.23 leaves one to three per
/// host). Opened a few dozen at a time so that the opening burst does not measure handshakes instead.
/// The server's idle timeout may close them: they are counted, and with `--idle-reopen` opened again.
///
/// Confined to `loop`, hence `@unchecked Sendable`.
final class IdlePool: @unchecked Sendable {
    let loop: any EventLoop
    private let target: ServerTarget
    private let reopen: Bool
    private(set) var counters = IdleCounters()
    private var toOpen: Int
    private var opening = 0
    private static let maxOpening = 64

    init(loop: any EventLoop, target: ServerTarget, count: Int, reopen: Bool) {
        self.loop = loop
        self.target = target
        self.reopen = reopen
        toOpen = count
        counters.target = count
    }

    /// Nothing left to open and no handshake in flight.
    var settled: Bool { toOpen == 0 && opening == 0 }

    /// Opens connections until `maxOpening` handshakes are in flight. On the loop.
    func pump() {
        while toOpen > 0, opening < Self.maxOpening {
            toOpen -= 1
            opening += 1
            open()
        }
    }

    private func open() {
        let pool = self
        let sslContext = target.sslContext
        let hostname = target.serverHostname
        ClientBootstrap(group: loop)
            .connectTimeout(.seconds(16))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: sslContext, serverHostname: hostname))
                    try channel.pipeline.syncOperations.addHandler(IdleHandler(pool: pool))
                }
            }
            .connect(to: target.address)
            .whenFailure { _ in
                pool.ended(established: false)
            }
    }

    func established() {
        opening -= 1
        counters.established += 1
        counters.open += 1
        pump()
    }

    /// A connection closed (by the server, or its handshake failed) or could not connect.
    func ended(established: Bool) {
        if established {
            counters.open -= 1
            counters.closedByServer += 1
        } else {
            opening -= 1
            counters.failed += 1
        }
        if reopen {
            // A second's pause, so a refusing server does not turn this into a busy loop.
            loop.scheduleTask(in: .seconds(1)) { [self] in
                self.toOpen += 1
                self.counters.reopened += 1
                self.pump()
            }
        } else {
            // Not inline: a socket that cannot be created fails synchronously, inside pump().
            loop.execute { [self] in self.pump() }
        }
    }
}

/// Notes when the handshake completes and when the connection goes away; reads nothing else.
private final class IdleHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    private let pool: IdlePool
    private var isEstablished = false
    private var isEnded = false

    init(pool: IdlePool) {
        self.pool = pool
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let tlsEvent = event as? TLSUserEvent, case .handshakeCompleted = tlsEvent, !isEstablished {
            isEstablished = true
            pool.established()
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {}

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if !isEnded {
            isEnded = true
            pool.ended(established: isEstablished)
        }
        context.fireChannelInactive()
    }
}
