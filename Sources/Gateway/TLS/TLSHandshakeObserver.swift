import Logging
import Metrics
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTPTypes
import NIOSSL
import NIOTLS

/// Counts TLS handshakes by outcome (`gateway_tls_handshakes{result="ok"|"protocol"|"eof"|"other"}`)
/// and logs a sample of failures (at most one every 10 s), so an operator sees agents with the
/// wrong CA, an old TLS version or no client certificate without a log line per attempt.
///
/// It sits behind the HTTP codec (Hummingbird's `additionalChannelHandlers`); the TLS handler's
/// events and errors pass through the codec to it.
final class TLSHandshakeObserver: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart

    private let stats: TLSHandshakeStats
    private var settled = false

    init(stats: TLSHandshakeStats) {
        self.stats = stats
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        settled = true
        context.fireChannelRead(data)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if !settled, let event = event as? TLSUserEvent, case .handshakeCompleted = event {
            settled = true
            stats.succeeded()
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if !settled {
            settled = true
            // Behind a balancer that sends the PROXY protocol, the agent rather than the balancer.
            let proxied = (try? context.pipeline.syncOperations.handler(type: ProxyProtocolDecoder.self))?.source
            stats.failed(error, peer: proxied ?? context.channel.remoteAddress)
        }
        context.fireErrorCaught(error)
    }
}

/// Shared counters and the log sampler of every connection's observer.
final class TLSHandshakeStats: Sendable {
    private let logger: Logger
    private let lastLogged = NIOLockedValueBox(ContinuousClock.now - .seconds(60))
    private let ok = Counter(label: "gateway_tls_handshakes", dimensions: [("result", "ok")])
    private let failures: [String: Counter] = Dictionary(uniqueKeysWithValues: ["protocol", "eof", "other"].map {
        ($0, Counter(label: "gateway_tls_handshakes", dimensions: [("result", $0)]))
    })

    init(logger: Logger) {
        self.logger = logger
    }

    func succeeded() { ok.increment() }

    func failed(_ error: any Error, peer: SocketAddress?) {
        var reason = "other"
        if let error = error as? NIOSSLError, case .handshakeFailed(let boring) = error {
            reason = boring == .sslError([.eofDuringHandshake]) ? "eof" : "protocol"
        }
        failures[reason]?.increment()
        let now = ContinuousClock.now
        let log = lastLogged.withLockedValue { last in
            guard now - last >= .seconds(10) else { return false }
            last = now
            return true
        }
        if log {
            logger.warning("TLS handshake failed (one in 10 s is logged; gateway_tls_handshakes counts all)", metadata: [
                "gw.peer": "\(peer?.description ?? "?")", "gw.reason": "\(reason)", "gw.error": "\(error)",
            ])
        }
    }
}
