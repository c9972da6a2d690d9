import HTTPTypes
import Hummingbird
import HummingbirdCore
import NIOCore
import NIOHTTP1
import NIOHTTPTypes

/// Serves the HTTP requests of one agent connection from inside its channel pipeline.
///
/// Why a channel handler and not Hummingbird's per-connection loop: that loop is a Swift task
/// that lives as long as the connection, suspended in `next()` with an async channel's buffers
/// while the connection is idle. osquery 5.23 leaves its previous connection idle for every
/// request it makes (docs/protocol.md#connections), so most of a fleet's connections are idle,
/// and each one carried a task, its stack and the async channel. Here an idle connection is
/// only its socket, TLS and HTTP codec state; a task exists while a request is being answered.
/// The routes are the same router the rest of the gateway tests.
///
/// Per request: the head starts a task running the responder with a body streamed through a
/// back-pressured sequence (`AgentRequestBody`), so per-endpoint size limits and slow-body
/// timeouts in `RequestBodyReader` work as before. The response is written in one hop back to
/// the event loop. The pipeline's `HTTPServerPipelineHandler` holds a pipelined next request
/// until this response has ended, so at most one request per connection is in flight.
final class AgentConnectionHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    /// Answers one request; never throws, failures are rendered as osquery error bodies.
    typealias Responder = @Sendable (Request, any Channel) async -> Response

    private let responder: Responder
    private var state = AgentConnectionState()
    private var context: ChannelHandlerContext?

    init(responder: @escaping Responder) {
        self.responder = responder
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        state.connectionClosed()?.finish(ChannelError.ioOnClosedChannel)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            let body = AgentRequestBody.make(demand: .init(handler: self, eventLoop: context.eventLoop))
            state.requestStarted(body: body.source, closeAfterResponse: Self.asksToClose(head))
            let request = Request(head: head, body: RequestBody(asyncSequence: body.sequence))
            let channel = context.channel
            let responder = self.responder
            let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
            Task {
                let response = await responder(request, channel)
                let writer = CollectingBodyWriter()
                do {
                    try await response.body.write(writer)
                } catch {
                    // A streamed body that fails half-way cannot be rendered as an error any more;
                    // closing tells the agent the answer is incomplete.
                    channel.close(promise: nil)
                    return
                }
                let head = response.head
                let buffers = writer.buffers
                channel.eventLoop.execute { handler.value.respond(head: head, body: buffers) }
            }
        case .body(let buffer):
            if case .stopProducing = state.bodyReceived()?.yield(buffer) { state.pauseReading() }
        case .end:
            state.requestEnded()?.finish()
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        state.connectionClosed()?.finish(ChannelError.eof)
        context.fireChannelInactive()
    }

    func read(context: ChannelHandlerContext) {
        if state.deferRead() { return }
        context.read()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .inputClosed = event as? ChannelEvent {
            // The agent will send nothing more; answer what is in flight, then close.
            if state.inputClosed() { context.close(promise: nil) }
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        switch state.failed(parserError: error is HTTPParserError) {
        case .failBody(let body):
            // The route reading this body answers (a parser error becomes a 400 with a JSON body)
            // and the connection closes after it.
            body.finish(error)
        case .answerBadRequest:
            // `ProtocolErrorBodyHandler` turns this empty 400 into a JSON `error` body and closes.
            let head = HTTPResponse(status: .badRequest, headerFields: [.connection: "close", .contentLength: "0"])
            context.write(wrapOutboundOut(.head(head)), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in context.close(promise: nil) }
        case .close:
            context.close(promise: nil)
        }
    }

    /// Resumes reading once the route has consumed enough of a body it had paused.
    fileprivate func resumeReading() {
        guard let context, state.resumeReading() else { return }
        context.read()
    }

    private func respond(head: HTTPResponse, body: [ByteBuffer]) {
        guard let context, context.channel.isActive else { return }
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        for buffer in body { context.write(wrapOutboundOut(.body(buffer)), promise: nil) }
        let ended = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if state.responseEnded() { ended.whenComplete { _ in context.close(promise: nil) } }
    }

    /// Hummingbird's rule: only the request's `Connection: close` ends the connection after the
    /// answer (`ProtocolErrorBodyHandler` handles the response's).
    private static func asksToClose(_ head: HTTPRequest) -> Bool {
        head.headerFields[.connection]?.lowercased().contains("close") ?? false
    }
}

/// What one connection is doing, as a value: whether a request body is still arriving (and where
/// it goes), whether reading is paused for it, and whether to close after the answer.
struct AgentConnectionState {
    private var body: AgentRequestBody.Source?
    private var responding = false
    private var paused = false
    private var readPending = false
    private var closeAfterResponse = false

    mutating func requestStarted(body: AgentRequestBody.Source, closeAfterResponse close: Bool) {
        self.body = body
        responding = true
        closeAfterResponse = closeAfterResponse || close
    }

    /// Where a body part goes; nil once the route stopped reading (the rest is dropped).
    func bodyReceived() -> AgentRequestBody.Source? { body }

    mutating func requestEnded() -> AgentRequestBody.Source? {
        defer { body = nil; paused = false }
        return body
    }

    mutating func pauseReading() { paused = true }

    /// True when a read must wait for the route to catch up.
    mutating func deferRead() -> Bool {
        guard paused else { return false }
        readPending = true
        return true
    }

    /// True when a deferred read should be issued now.
    mutating func resumeReading() -> Bool {
        paused = false
        defer { readPending = false }
        return readPending
    }

    /// True when the connection should close now (nothing in flight).
    mutating func inputClosed() -> Bool {
        closeAfterResponse = true
        return !responding
    }

    enum FailureAction {
        /// A body is arriving: fail it, so the route reading it answers, then close.
        case failBody(AgentRequestBody.Source)
        /// Between requests: answer the bad request, then close.
        case answerBadRequest
        case close
    }

    /// What a pipeline error means for this connection: it closes after whatever answer is due.
    mutating func failed(parserError: Bool) -> FailureAction {
        closeAfterResponse = true
        if let body {
            self.body = nil
            paused = false
            return .failBody(body)
        }
        return parserError && !responding ? .answerBadRequest : .close
    }

    /// True when the connection should close after this answer.
    mutating func responseEnded() -> Bool {
        responding = false
        return closeAfterResponse
    }

    /// The body still waiting for parts, to fail it; the state is reset.
    mutating func connectionClosed() -> AgentRequestBody.Source? {
        defer { body = nil; paused = false; readPending = false }
        return body
    }
}

/// Collects a response body; the gateway's answers to agents are small and complete before they are
/// sent, so the whole response goes out in one hop to the event loop.
/// A class because `ResponseBody.write` consumes its writer: the buffers are read back after it.
private final class CollectingBodyWriter: ResponseBodyWriter {
    var buffers: [ByteBuffer] = []

    func write(_ buffer: ByteBuffer) async throws {
        buffers.append(buffer)
    }

    func finish(_ trailingHeaders: HTTPFields?) async throws {}
}

/// The request body as a back-pressured async sequence fed by the connection's handler.
enum AgentRequestBody {
    typealias Sequence = NIOThrowingAsyncSequenceProducer<
        ByteBuffer, any Error, NIOAsyncSequenceProducerBackPressureStrategies.HighLowWatermark, Demand
    >
    typealias Source = Sequence.Source

    /// Tells the handler, on its event loop, that the route wants more of the body.
    struct Demand: NIOAsyncSequenceProducerDelegate {
        let handler: NIOLoopBound<AgentConnectionHandler>

        init(handler: AgentConnectionHandler, eventLoop: any EventLoop) {
            self.handler = NIOLoopBound(handler, eventLoop: eventLoop)
        }

        func produceMore() {
            let handler = self.handler
            handler.eventLoop.execute { handler.value.resumeReading() }
        }

        func didTerminate() {
            // The route stopped reading: let the rest of the body arrive and be dropped, so the
            // connection stays usable for the next request.
            produceMore()
        }
    }

    static func make(demand: Demand) -> Sequence.NewSequence {
        Sequence.makeSequence(
            backPressureStrategy: .init(lowWatermark: 2, highWatermark: 8), finishOnDeinit: false, delegate: demand)
    }
}
