#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// One request on a new TCP+TLS connection, as osquery 5.23 makes every request: connect, handshake,
/// one POST, the whole response. It ends exactly once, with the response (the connection is handed to
/// the caller and left open) or a failure kind; its deadline closes the connection, so a hung server
/// never leaks one.
///
/// Confined to the event loop it was started on (hence `@unchecked Sendable`: NIO's `@Sendable`
/// callbacks capture it, but they all run on that loop).
final class Exchange: @unchecked Sendable {
    struct Response {
        var status: Int
        var body: ByteBuffer
        var latency: TimeAmount
        /// Still open: the caller keeps it as the "previous" connection or closes it.
        var channel: any Channel
    }

    enum Outcome {
        case response(Response)
        case failure(FailureKind)
    }

    /// Bodies past this are not read further (osquery refuses configs over 1 MiB anyway).
    static let maxBody = 8 << 20

    /// Released when the exchange ends, with the response body and the completion: a kept idle
    /// connection then holds no request, config or callback (thousands of them sit idle at once).
    private(set) var request: PreparedRequest?
    private let started = NIODeadline.now()
    private var completion: ((Outcome) -> Void)?
    private var channel: (any Channel)?
    private var timeoutTask: Scheduled<Void>?
    private var finished = false
    private var handshakeDone = false
    private var status = 0
    private var body = ByteBuffer()
    private var overflow = false

    private init(request: PreparedRequest, completion: @escaping (Outcome) -> Void) {
        self.request = request
        self.completion = completion
    }

    /// Starts `request` on `loop`; `completion` runs on `loop`, possibly before this returns (a
    /// socket that cannot even be created fails at once).
    static func start(_ request: PreparedRequest, target: ServerTarget, on loop: any EventLoop, deadline: NIODeadline,
                      completion: @escaping (Outcome) -> Void) {
        let exchange = Exchange(request: request, completion: completion)
        exchange.timeoutTask = loop.scheduleTask(deadline: deadline) {
            exchange.fail(.timeout)
        }
        let sslContext = target.sslContext
        let hostname = target.serverHostname
        let remaining: TimeAmount = deadline - NIODeadline.now()
        ClientBootstrap(group: loop)
            .connectTimeout(max(remaining, TimeAmount.milliseconds(1)))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    exchange.attach(channel)
                    try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: sslContext, serverHostname: hostname))
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(ExchangeHandler(exchange: exchange))
                }
            }
            .connect(to: target.address)
            .whenComplete { result in
                switch result {
                case .success(let channel): exchange.connected(channel)
                case .failure(let error): exchange.fail(Exchange.connectFailure(error))
                }
            }
    }

    /// Socket creation and connect errors, by what an operator would fix.
    static func connectFailure(_ error: any Error) -> FailureKind {
        if let io = error as? IOError {
            switch io.errnoCode {
            case EMFILE, ENFILE: return .fdLimit
            case EADDRNOTAVAIL: return .ports
            case ETIMEDOUT: return .timeout
            default: return .connect
            }
        }
        if let channelError = error as? ChannelError, case .connectTimeout = channelError { return .timeout }
        return .connect
    }

    // MARK: - Events from the bootstrap and the handler (all on the loop)

    private func attach(_ channel: any Channel) {
        self.channel = channel
    }

    private func connected(_ channel: any Channel) {
        // The deadline may have passed while connecting.
        if finished { channel.closeWithoutTLSShutdown() }
    }

    func handshakeCompleted() {
        handshakeDone = true
    }

    func received(head: HTTPResponseHead) {
        status = Int(head.status.code)
    }

    func received(bodyPart: inout ByteBuffer) {
        guard !finished, !overflow else { return }
        if body.readableBytes + bodyPart.readableBytes > Self.maxBody {
            overflow = true
        } else {
            body.writeBuffer(&bodyPart)
        }
    }

    func responseEnded() {
        guard !finished else { return }
        guard !overflow, let channel else {
            fail(.badBody)
            return
        }
        finish(.response(Response(status: status, body: body, latency: NIODeadline.now() - started, channel: channel)))
    }

    /// The connection failed or closed before the response was complete (ignored afterwards, when a
    /// kept connection is closed by the server's idle timeout).
    func transportFailed() {
        fail(handshakeDone ? .closed : .tls)
    }

    private func fail(_ kind: FailureKind) {
        guard !finished else { return }
        channel?.closeWithoutTLSShutdown()
        finish(.failure(kind))
    }

    private func finish(_ outcome: Outcome) {
        finished = true
        timeoutTask?.cancel()
        timeoutTask = nil
        let completion = self.completion
        self.completion = nil
        request = nil
        body = ByteBuffer()
        channel = nil
        completion?(outcome)
    }
}
