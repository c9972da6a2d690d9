import NIOCore
import NIOHTTP1
import NIOTLS

/// The last handler of an exchange's pipeline (TLS, HTTP/1.1 codec, this): sends the one request as
/// soon as TCP is up (the TLS handler holds it until the handshake is done, as a client library
/// writing its request right after connect does) and feeds the response to its `Exchange`.
///
/// It stays in the pipeline after the response while the host keeps the connection idle; whatever
/// happens to the connection then (the server's idle timeout) is ignored by the finished exchange.
final class ExchangeHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundOut = HTTPClientRequestPart

    private let exchange: Exchange

    init(exchange: Exchange) {
        self.exchange = exchange
    }

    func channelActive(context: ChannelHandlerContext) {
        guard let request = exchange.request else {  // the deadline passed while connecting
            context.fireChannelActive()
            return
        }
        context.write(wrapOutboundOut(.head(request.head)), promise: nil)
        if request.body.readableBytes > 0 {
            context.write(wrapOutboundOut(.body(.byteBuffer(request.body))), promise: nil)
        }
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        context.fireChannelActive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let tlsEvent = event as? TLSUserEvent, case .handshakeCompleted = tlsEvent {
            exchange.handshakeCompleted()
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            exchange.received(head: head)
        case .body(var part):
            exchange.received(bodyPart: &part)
        case .end:
            exchange.responseEnded()
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        exchange.transportFailed()
    }

    func channelInactive(context: ChannelHandlerContext) {
        exchange.transportFailed()
        context.fireChannelInactive()
    }
}
