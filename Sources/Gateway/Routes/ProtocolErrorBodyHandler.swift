import HTTPTypes
import Hummingbird
import NIOCore
import NIOHTTP1
import NIOHTTPTypes

/// Gives every response the agent listener sends a JSON body, whatever layer produced it.
///
/// Hummingbird answers a request it cannot parse (a bad request line, headers over the limit,
/// Content-Length with Transfer-Encoding, an unknown method, a bad chunk size) with a 400 and an
/// *empty* body, below every route and middleware. osquery judges answers by the body alone
/// (docs/protocol.md#status-codes) and reads an empty body as success, so it would delete the batch.
/// This handler sits after the HTTP codec, sees the parser error go by, and rewrites that 400 into
/// `{"error": ...}`.
///
/// It also closes the connection after a response that says `Connection: close` (Hummingbird only
/// honours the request's header), so a refused oversized, too slow or over-budget body is not
/// drained first, and after a CONNECT, which would otherwise leave the parser stopped until the
/// idle timeout.
final class ProtocolErrorBodyHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private var parserError: HTTPParserError?
    private var closeAfterResponse = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .head(let head) = unwrapInboundIn(data), head.method == .connect { closeAfterResponse = true }
        context.fireChannelRead(data)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let error = error as? HTTPParserError { parserError = error }
        context.fireErrorCaught(error)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head(var head):
            if head.headerFields[.connection]?.lowercased() == "close" { closeAfterResponse = true }
            guard let parserError, head.status == .badRequest, head.headerFields[.contentLength] == "0" else {
                context.write(data, promise: promise)
                return
            }
            let body = context.channel.allocator.buffer(string: Self.body(for: parserError))
            head.headerFields[.contentType] = "application/json"
            head.headerFields[.contentLength] = String(body.readableBytes)
            context.write(wrapOutboundOut(.head(head)), promise: nil)
            context.write(wrapOutboundOut(.body(body)), promise: promise)
        case .body:
            context.write(data, promise: promise)
        case .end:
            guard closeAfterResponse else {
                context.write(data, promise: promise)
                return
            }
            context.writeAndFlush(data, promise: promise)
            context.close(promise: nil)
        }
    }

    /// The answer to a request whose body broke framing: 400, the JSON body, and the connection closed
    /// after it (what follows on the wire cannot be trusted to start a request).
    static func response(for error: HTTPParserError) -> Response {
        Response(
            status: .badRequest, headers: [.contentType: "application/json", .connection: "close"],
            body: .init(byteBuffer: ByteBuffer(string: body(for: error))))
    }

    /// The agent-visible reason; names the kind of problem, never echoes request bytes.
    static func body(for error: HTTPParserError) -> String {
        let reason: String
        switch error {
        case .invalidMethod: reason = "unsupported HTTP method"
        case .headerOverflow: reason = "request headers are too large"
        case .unexpectedContentLength, .invalidContentLength: reason = "conflicting or invalid Content-Length"
        case .invalidChunkSize: reason = "malformed chunk size"
        case .invalidURL: reason = "malformed request target"
        case .invalidVersion: reason = "unsupported HTTP version"
        case .invalidEOFState: reason = "connection closed mid-request"
        default: reason = "malformed HTTP request"
        }
        return #"{"error":"bad request: "# + reason + #""}"#
    }
}
