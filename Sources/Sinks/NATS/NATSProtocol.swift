import NIOCore
import Support

/// A message the server delivered on a subscription (`MSG`, or `HMSG` with headers).
struct NATSMessage: Sendable {
    var subject: String
    var replyTo: String?
    /// The status of the header block's first line (`NATS/1.0 503` for "no responders"), if any.
    var status: Int?
    /// The status line's text after the code, if any.
    var statusDescription: String?
    var payload: ByteBuffer
}

/// What the server can send (the NATS client protocol, docs.nats.io "Client Protocol").
enum NATSServerOperation: Sendable {
    /// `INFO {json}`: the server's settings, first on every connection (later ones announce cluster changes).
    case info(String)
    case message(NATSMessage)
    case ping
    case pong
    case ok
    /// `-ERR 'text'`: most errors close the connection right after.
    case error(String)
}

/// The NATS client protocol as bytes: the parser of what the server sends and the few operations
/// the sink sends. No state beyond the unread bytes, so it is tested without a socket.
enum NATSProtocol {
    /// A control line longer than this is not NATS (INFO of a big cluster stays far below).
    static let maxControlLine = 1 << 20
    /// The largest message taken from the server (its acknowledgements are a few hundred bytes).
    static let maxMessage = 8 << 20

    struct ProtocolError: Error, CustomStringConvertible {
        var description: String
    }

    /// Takes the next whole operation off the front of `buffer`; nil (nothing consumed) when its
    /// bytes have not all arrived yet.
    /// - Throws: `ProtocolError` for bytes that are not the NATS protocol.
    static func next(from buffer: inout ByteBuffer) throws -> NATSServerOperation? {
        while true {
            let view = buffer.readableBytesView
            guard let newline = view.firstIndex(of: UInt8(ascii: "\n")) else {
                if view.count > maxControlLine { throw ProtocolError(description: "control line longer than \(maxControlLine) bytes") }
                return nil
            }
            var lineLength = newline - view.startIndex
            if lineLength > 0, view[newline - 1] == UInt8(ascii: "\r") { lineLength -= 1 }
            let lineEnd = newline - view.startIndex + 1
            let line = buffer.getString(at: buffer.readerIndex, length: lineLength) ?? ""
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard let verb = fields.first?.uppercased() else {
                // A blank line: skip it (a loop, not recursion: a run of them cannot grow the stack).
                buffer.moveReaderIndex(forwardBy: lineEnd)
                continue
            }
            switch verb {
            case "INFO":
                buffer.moveReaderIndex(forwardBy: lineEnd)
                return .info(String(line.drop(while: { $0 != " " && $0 != "\t" }).drop(while: { $0 == " " || $0 == "\t" })))
            case "PING":
                buffer.moveReaderIndex(forwardBy: lineEnd)
                return .ping
            case "PONG":
                buffer.moveReaderIndex(forwardBy: lineEnd)
                return .pong
            case "+OK":
                buffer.moveReaderIndex(forwardBy: lineEnd)
                return .ok
            case "-ERR":
                buffer.moveReaderIndex(forwardBy: lineEnd)
                var text = line.dropFirst(4)
                while text.first == " " { text = text.dropFirst() }
                while text.last == " " { text = text.dropLast() }
                if text.count >= 2, text.hasPrefix("'"), text.hasSuffix("'") { text = text.dropFirst().dropLast() }
                return .error(String(text))
            case "MSG", "HMSG":
                return try message(fields: fields.dropFirst().map(String.init), headers: verb == "HMSG", lineEnd: lineEnd, line: line, from: &buffer)
            default:
                throw ProtocolError(description: "unknown operation \(line.prefix(40))")
            }
        }
    }

    /// `MSG <subject> <sid> [reply-to] <#bytes>` or `HMSG <subject> <sid> [reply-to] <#header bytes> <#total bytes>`,
    /// then the payload and CRLF.
    private static func message(fields: [String], headers: Bool, lineEnd: Int, line: String, from buffer: inout ByteBuffer) throws -> NATSServerOperation? {
        let counts = headers ? 2 : 1
        guard fields.count == 2 + counts || fields.count == 3 + counts,
            let total = Int(fields[fields.count - 1]), total >= 0
        else { throw ProtocolError(description: "malformed \(line.prefix(80))") }
        // Acknowledgements are small; a count past this is a broken or hostile server (and the sums
        // below must not overflow).
        guard total <= maxMessage else { throw ProtocolError(description: "message of \(total) bytes is larger than \(maxMessage)") }
        let headerLength = headers ? (Int(fields[fields.count - 2]) ?? -1) : 0
        guard (0...total).contains(headerLength) else { throw ProtocolError(description: "malformed \(line.prefix(80))") }
        guard buffer.readableBytes >= lineEnd + total + 2 else { return nil }
        buffer.moveReaderIndex(forwardBy: lineEnd)
        var status: Int?
        var statusDescription: String?
        if headerLength > 0, let block = buffer.readString(length: headerLength) {
            // `NATS/1.0 503 No Responders\r\nName: value\r\n\r\n`: only the status line matters here.
            let first = block.split(separator: "\r\n", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            let parts = first.split(separator: " ", maxSplits: 2)
            if parts.count >= 2 { status = Int(parts[1]) }
            if parts.count == 3 { statusDescription = String(parts[2]) }
        }
        let payload = buffer.readSlice(length: total - headerLength) ?? ByteBuffer()
        buffer.moveReaderIndex(forwardBy: 2)
        let replyTo = fields.count == 3 + counts ? fields[2] : nil
        return .message(NATSMessage(subject: fields[0], replyTo: replyTo, status: status, statusDescription: statusDescription, payload: payload))
    }

    /// `CONNECT {json}`: no `+OK` per operation (verbose off), headers so that a publish no stream
    /// takes is answered at once with status 503 (no responders) instead of silence; `tls_required`
    /// when it goes over TLS.
    static func connect(name: String, headers: Bool, tls: Bool = false, user: String?, password: String?) -> String {
        var options = "\"verbose\":false,\"pedantic\":false,\"tls_required\":\(tls),\"name\":\(JSONString.quoted(name)),"
            + "\"lang\":\"swift\",\"version\":\"1.0\",\"protocol\":1,\"headers\":\(headers),\"no_responders\":\(headers)"
        switch (user, password) {
        case (let user?, let password?):
            options += ",\"user\":\(JSONString.quoted(user)),\"pass\":\(JSONString.quoted(password))"
        case (let token?, nil):
            options += ",\"auth_token\":\(JSONString.quoted(token))"
        default:
            break
        }
        return "CONNECT {\(options)}\r\n"
    }

    /// `PUB <subject> <reply-to> <#bytes>\r\n<payload>\r\n`.
    static func writePublish(subject: String, replyTo: String, payload: ByteBuffer, into buffer: inout ByteBuffer) {
        buffer.writeString("PUB \(subject) \(replyTo) \(payload.readableBytes)\r\n")
        buffer.writeImmutableBuffer(payload)
        buffer.writeString("\r\n")
    }
}
