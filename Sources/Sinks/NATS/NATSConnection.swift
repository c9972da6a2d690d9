import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL

/// One connection to a NATS server, speaking just what publishing with acknowledgements needs.
///
/// On connect: the server's `INFO`; then, when the server requires TLS or the client asks for it,
/// the TLS handshake on the same connection (NATS upgrades after its plain-text `INFO`); then
/// `CONNECT` (verbose off, headers on when the server has them), `SUB <inbox>.*` and a `PING` whose
/// `PONG` proves the server accepted the connection (a refused login answers `-ERR` and closes instead). Every publish carries its own reply subject
/// `<inbox>.<n>`, so each answer finds its message however late or out of order it comes; answers
/// nobody waits for any more (after a timeout) are dropped. The server's `PING`s are answered on the
/// event loop, idle or not.
final class NATSConnection: Sendable {
    /// What the server's `INFO` says that matters here.
    struct ServerInfo: Decodable, Sendable {
        var version: String?
        var maxPayload: Int?
        var headers: Bool?
        var jetStream: Bool?
        var tlsRequired: Bool?
        /// The server takes TLS and plain connections alike (`allow_non_tls`).
        var tlsAvailable: Bool?

        enum CodingKeys: String, CodingKey {
            case version
            case maxPayload = "max_payload"
            case headers
            case jetStream = "jetstream"
            case tlsRequired = "tls_required"
            case tlsAvailable = "tls_available"
        }
    }

    /// How a connection may upgrade to TLS after the server's `INFO`.
    struct TLSUpgrade: Sendable {
        var context: NIOSSLContext
        /// The client insists: a server that offers no TLS is refused (no plain-text fallback).
        /// Otherwise TLS runs only when the server requires it.
        var required: Bool
        /// SNI and the name the certificate must carry; nil: the address's host.
        var serverName: String?
    }

    let channel: any Channel
    let info: ServerInfo
    private let replies: NATSReplies

    private init(channel: any Channel, info: ServerInfo, replies: NATSReplies) {
        self.channel = channel
        self.info = info
        self.replies = replies
    }

    /// Largest payload the server takes (1 MiB unless it says otherwise).
    var maxPayload: Int { info.maxPayload ?? (1 << 20) }
    /// False once the connection closed; the owner then makes a new one.
    var isActive: Bool { channel.isActive }

    /// Connects, logs in (user and password, or a token, from the address) and subscribes to a
    /// fresh inbox.
    /// - Parameters:
    ///   - name: the client name the server shows (`nats server report connections`, monitoring).
    ///   - timeout: for each step: TCP connect, `INFO`, the TLS handshake, `PONG`.
    ///   - tls: how to upgrade; nil: plain text only (a server requiring TLS is refused).
    /// - Throws: connect errors, TLS errors, `NATSReplies.Failure` with the server's `-ERR` text when
    ///   it refused, or when one side wants TLS and the other cannot have it.
    static func connect(to address: NetworkAddress, name: String, timeout: Duration, tls: TLSUpgrade? = nil) async throws -> NATSConnection {
        let eventLoop = MultiThreadedEventLoopGroup.singleton.next()
        let replies = NATSReplies(inbox: "_INBOX." + randomToken(), eventLoop: eventLoop)
        let channel: any Channel
        do {
            channel = try await TCPConnector.connect(to: address, tls: nil, timeout: timeout, on: eventLoop) {
                [NATSProtocolHandler(replies: replies)]
            }
        } catch {
            replies.closed(because: "\(error)")
            throw error
        }
        do {
            let text = try await replies.within(timeout, replies.info.futureResult, waitingFor: "the server's INFO").get()
            let info = try JSONDecoder().decode(ServerInfo.self, from: Data(text.utf8))
            let secure = info.tlsRequired == true || tls?.required == true
            if secure {
                guard let tls else {
                    throw NATSReplies.Failure(description: "\(address) requires TLS; give the sink a tls: section or a tls:// URL")
                }
                guard info.tlsRequired == true || info.tlsAvailable == true else {
                    throw NATSReplies.Failure(description: "\(address) offers no TLS (its INFO has neither tls_required nor tls_available)")
                }
                let serverName = tls.serverName ?? (address.hostIsIPAddress ? nil : address.host)
                try await TCPConnector.startTLS(on: channel, context: tls.context, serverName: serverName, timeout: timeout, peer: "\(address)")
            }
            let pong = replies.expectPong()
            var hello = ByteBuffer()
            hello.writeString(NATSProtocol.connect(name: name, headers: info.headers ?? false, tls: secure, user: address.user, password: address.password))
            hello.writeString("SUB \(replies.inbox).* 1\r\nPING\r\n")
            try await channel.writeAndFlush(hello).get()
            try await replies.within(timeout, pong, waitingFor: "the server to accept the connection").get()
            return NATSConnection(channel: channel, info: info, replies: replies)
        } catch {
            channel.close(promise: nil)
            throw error
        }
    }

    /// Publishes every message with its own reply subject and returns the answers in the same
    /// order, once all came.
    /// - Throws: when the connection fails or not every answer came within `timeout`.
    func publish(_ messages: [(subject: String, payload: ByteBuffer)], timeout: Duration) async throws -> [NATSMessage] {
        let (id, first, answers) = replies.reserve(count: messages.count)
        var buffer = ByteBuffer()
        buffer.reserveCapacity(messages.reduce(0) { $0 + $1.payload.readableBytes + $1.subject.utf8.count + 64 })
        for (i, message) in messages.enumerated() {
            NATSProtocol.writePublish(subject: message.subject, replyTo: "\(replies.inbox).\(first + UInt64(i))", payload: message.payload, into: &buffer)
        }
        let pending = replies
        let count = messages.count
        let deadline = channel.eventLoop.scheduleTask(in: TimeAmount(timeout)) {
            let why = pending.lastError.map { "; last error: \($0)" } ?? ""
            pending.cancel(id, NATSReplies.Failure(description: "not every answer came within \(timeout) (\(count) messages)\(why)"))
        }
        defer { deadline.cancel() }
        do {
            try await channel.writeAndFlush(buffer).get()
        } catch {
            replies.cancel(id, error)
            throw error
        }
        return try await answers.get()
    }

    /// One request and its answer (JetStream API calls).
    func request(subject: String, payload: ByteBuffer = ByteBuffer(), timeout: Duration) async throws -> NATSMessage {
        let answers = try await publish([(subject: subject, payload: payload)], timeout: timeout)
        return answers[0]
    }

    func close() {
        channel.close(promise: nil)
    }

    /// 22 random letters and digits: an inbox nobody else picks.
    static func randomToken() -> String {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
        return String((0..<22).map { _ in alphabet.randomElement()! })
    }
}

/// The answers a connection waits for, shared by its handler (on the event loop) and its callers.
final class NATSReplies: Sendable {
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    /// The batch of publishes whose answers arrive on reply subjects `first ..< first + answers.count`.
    private struct Waiting {
        var first: UInt64
        var answers: [NATSMessage?]
        var remaining: Int
        var promise: EventLoopPromise<[NATSMessage]>
    }

    private struct State {
        var nextToken: UInt64 = 1
        var nextID = 0
        var waiting: [Int: Waiting] = [:]
        var pongs: [EventLoopPromise<Void>] = []
        /// The server's last `-ERR`, to say why the connection closed.
        var lastError: String?
        var closedBecause: String?
    }

    let inbox: String
    let eventLoop: any EventLoop
    /// The first `INFO`.
    let info: EventLoopPromise<String>
    private let state = NIOLockedValueBox(State())

    init(inbox: String, eventLoop: any EventLoop) {
        self.inbox = inbox
        self.eventLoop = eventLoop
        info = eventLoop.makePromise(of: String.self)
    }

    /// Reply subjects for `count` publishes, and the future of their answers.
    func reserve(count: Int) -> (id: Int, first: UInt64, answers: EventLoopFuture<[NATSMessage]>) {
        let promise = eventLoop.makePromise(of: [NATSMessage].self)
        let (id, first, closed) = state.withLockedValue { state -> (Int, UInt64, String?) in
            let id = state.nextID
            let first = state.nextToken
            state.nextID += 1
            state.nextToken += UInt64(count)
            if state.closedBecause == nil {
                state.waiting[id] = Waiting(first: first, answers: Array(repeating: nil, count: count), remaining: count, promise: promise)
            }
            return (id, first, state.closedBecause)
        }
        if let closed { promise.fail(Failure(description: "connection closed: \(closed)")) }
        return (id, first, promise.futureResult)
    }

    /// A `PONG` is due; its future completes when it comes.
    func expectPong() -> EventLoopFuture<Void> {
        let promise = eventLoop.makePromise(of: Void.self)
        let closed = state.withLockedValue { state -> String? in
            if state.closedBecause == nil { state.pongs.append(promise) }
            return state.closedBecause
        }
        if let closed { promise.fail(Failure(description: "connection closed: \(closed)")) }
        return promise.futureResult
    }

    /// `future`, or a failure naming `what` after `timeout`.
    func within<T: Sendable>(_ timeout: Duration, _ future: EventLoopFuture<T>, waitingFor what: String) -> EventLoopFuture<T> {
        let promise = eventLoop.makePromise(of: T.self)
        let deadline = eventLoop.scheduleTask(in: TimeAmount(timeout)) {
            promise.fail(Failure(description: "no answer within \(timeout) waiting for \(what)"))
        }
        future.whenComplete { result in
            deadline.cancel()
            promise.completeWith(result)
        }
        return promise.futureResult
    }

    // MARK: Called by the handler, on the event loop.

    func received(_ message: NATSMessage) {
        guard message.subject.hasPrefix(inbox), message.subject.utf8.count > inbox.utf8.count + 1,
            let token = UInt64(message.subject.dropFirst(inbox.count + 1))
        else { return }
        let done = state.withLockedValue { state -> (EventLoopPromise<[NATSMessage]>, [NATSMessage])? in
            guard let entry = state.waiting.first(where: { token >= $0.value.first && token < $0.value.first + UInt64($0.value.answers.count) }) else {
                return nil
            }
            let (id, waiting) = (entry.key, entry.value)
            let index = Int(token - waiting.first)
            guard waiting.answers[index] == nil else { return nil }
            var updated = waiting
            updated.answers[index] = message
            updated.remaining -= 1
            if updated.remaining > 0 {
                state.waiting[id] = updated
                return nil
            }
            state.waiting[id] = nil
            return (updated.promise, updated.answers.compactMap { $0 })
        }
        if let done { done.0.succeed(done.1) }
    }

    func pong() {
        let promise = state.withLockedValue { state -> EventLoopPromise<Void>? in
            state.pongs.isEmpty ? nil : state.pongs.removeFirst()
        }
        promise?.succeed(())
    }

    /// The server's `-ERR` (most close the connection; a permissions violation does not).
    func serverError(_ text: String) {
        state.withLockedValue { $0.lastError = "the server said: \(text)" }
    }

    /// A read or protocol error; the handler closes the connection.
    func failed(_ error: any Error) {
        state.withLockedValue { $0.lastError = "\(error)" }
    }

    /// The last `-ERR` or connection error, for the reason of a timeout.
    var lastError: String? { state.withLockedValue { $0.lastError } }

    /// Fails everything still waiting.
    func cancel(_ id: Int, _ error: any Error) {
        let waiting = state.withLockedValue { $0.waiting.removeValue(forKey: id) }
        waiting?.promise.fail(error)
    }

    /// The connection closed: fails everything waiting, and what is asked later.
    func closed(because reason: String) {
        let (waiting, pongs, why) = state.withLockedValue { state -> ([Waiting], [EventLoopPromise<Void>], String) in
            let why = state.lastError ?? reason
            if state.closedBecause == nil { state.closedBecause = why }
            defer {
                state.waiting = [:]
                state.pongs = []
            }
            return (Array(state.waiting.values), state.pongs, why)
        }
        let failure = Failure(description: "connection closed: \(why)")
        info.fail(failure)
        for batch in waiting { batch.promise.fail(failure) }
        for pong in pongs { pong.fail(failure) }
    }
}

/// Reads the server's operations off the connection and hands them to `NATSReplies`; answers `PING`.
private final class NATSProtocolHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let replies: NATSReplies
    private var unread = ByteBuffer()

    init(replies: NATSReplies) {
        self.replies = replies
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        unread.writeBuffer(&bytes)
        do {
            while let operation = try NATSProtocol.next(from: &unread) {
                switch operation {
                case .info(let text): replies.info.succeed(text)
                case .message(let message): replies.received(message)
                case .ping: context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: "PONG\r\n")), promise: nil)
                case .pong: replies.pong()
                case .ok: break
                case .error(let text): replies.serverError(text)
                }
            }
        } catch {
            replies.failed(error)
            context.close(promise: nil)
            return
        }
        if unread.readableBytes == 0 {
            unread.clear()
        } else if unread.readerIndex > 1 << 16 {
            unread.discardReadBytes()
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        replies.failed(error)
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        replies.closed(because: "the server closed it")
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        replies.closed(because: "it was closed")
    }
}
