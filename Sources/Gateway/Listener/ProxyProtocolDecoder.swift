import NIOCore

/// Takes the PROXY protocol header (`ProxyHeader`, v1 or v2) off the front of a connection when
/// `listen.proxy_protocol` is on, so the gateway knows the agent's own address behind a TCP
/// balancer: the `X-Forwarded-For` an upstream backend gets, the peer in handshake-failure logs.
///
/// It sits first in the pipeline, before TLS. Until the header is complete it holds the bytes;
/// then it passes on what followed the header, and every later read unchanged. A connection
/// without a valid header is closed with a `ProxyProtocolError`: behind a balancer that sends
/// one, it is a client that went around the balancer. A header that never completes is ended by
/// the listener's idle timeout, as a request that never completes is.
///
/// Read `source` on the connection's event loop (`GatewayRequestContext.agentAddress()`).
final class ProxyProtocolDecoder: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private enum State {
        case reading(ByteBuffer?)
        case passing
        case failed
    }

    private var state = State.reading(nil)
    /// The agent's address as the header named it; nil before the header, and for a header that
    /// names none (the balancer's own connections), when the connection's peer is the client.
    private(set) var source: SocketAddress?

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch state {
        case .passing:
            context.fireChannelRead(data)
        case .failed:
            break
        case .reading(let held):
            var incoming = unwrapInboundIn(data)
            var bytes = held ?? ByteBuffer()
            bytes.writeBuffer(&incoming)
            switch ProxyHeader.parse(Array(bytes.readableBytesView)) {
            case .incomplete:
                state = .reading(bytes)
            case .invalid(let reason):
                state = .failed
                context.fireErrorCaught(ProxyProtocolError(reason: reason))
                context.close(promise: nil)
            case .complete(let address, let length):
                source = address
                state = .passing
                bytes.moveReaderIndex(forwardBy: length)
                if bytes.readableBytes > 0 { context.fireChannelRead(wrapInboundOut(bytes)) }
            }
        }
    }
}

/// A connection to a listener with `proxy_protocol: true` that did not start with a valid header.
struct ProxyProtocolError: Error, CustomStringConvertible {
    var reason: String
    var description: String { "PROXY protocol: \(reason)" }
}
