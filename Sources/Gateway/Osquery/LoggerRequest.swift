import NIOCore
import Sinks
import Support

/// A logger body (docs/protocol.md#logger): `{"node_key", "log_type", "data": [item, ...]}`.
///
/// Decoding walks the body once. Each item stays a slice of the request buffer (no copy) unless it
/// holds whitespace that would break a JSON line, in which case it is compacted. Only the fields
/// routing and file layout need are read: `name`, `action`, `severity`. The ingest step makes the
/// items records (`LogBatch`).
struct LoggerRequest: Sendable, NodeKeyed {
    struct Item: Sendable {
        var json: ByteBuffer
        var name: String?
        var isSnapshot = false
        var severity: Int?
    }

    var nodeKey: String?
    var kind: LogKind
    var items: [Item]

    /// - Throws: `OsqueryBodyError` for malformed JSON, wrong types or an unknown `log_type`.
    init(body: ByteBuffer) throws(OsqueryBodyError) {
        let parser = try body.parseOsqueryBody("logger", with: Parser(body: body))
        guard let logType = parser.logType else { throw OsqueryBodyError("log_type is missing") }
        guard logType == "result" || logType == "status" else {
            throw OsqueryBodyError("unknown log_type \(JSONString.quoted(logType))")
        }
        self.nodeKey = parser.nodeKey
        self.kind = logType == "result" ? .result : .status
        self.items = parser.items
    }

    private struct Parser: OsqueryBodyParser {
        let body: ByteBuffer
        var nodeKey: String?
        var logType: String?
        var items: [Item] = []

        mutating func parse(_ scanner: inout JSONScanner) throws(JSONError) {
            try scanner.forEachMember { (scanner, key) throws(JSONError) in
                switch key {
                case "node_key" where nodeKey == nil: nodeKey = try scanner.readString(for: "node_key")
                case "log_type": logType = try scanner.readString(for: "log_type")
                case "data":
                    guard try scanner.peek() == UInt8(ascii: "[") else {
                        throw JSONError("data must be an array", at: scanner.index)
                    }
                    try scanner.forEachElement(depth: 1) { (scanner) throws(JSONError) in
                        items.append(try item(&scanner))
                    }
                default:
                    try scanner.skipValue(depth: 1)
                }
            }
            try scanner.expectEnd()
        }

        /// One `data` item: its byte range, and `name`, `action` and `severity` read on the way.
        /// Hand-written over the scanner's primitives (no key strings, no closures): this loop runs once
        /// per log line.
        private func item(_ scanner: inout JSONScanner) throws(JSONError) -> Item {
            let quote = UInt8(ascii: "\"")
            guard try scanner.peek() == UInt8(ascii: "{") else {
                throw JSONError("data items must be objects", at: scanner.index)
            }
            let start = scanner.index
            scanner.sawWhitespace = false
            scanner.advance()
            var name: String?
            var isSnapshot = false
            var severity: Int?
            if try scanner.peek() == UInt8(ascii: "}") {
                scanner.advance()
            } else {
                while true {
                    guard try scanner.peek() == quote else { throw JSONError("expected a string key", at: scanner.index) }
                    let key = try scanner.readRawString()
                    try scanner.expect(UInt8(ascii: ":"))
                    let first = try scanner.peek()
                    if !key.escaped && first == quote && scanner.bytes(key.range, equal: "name") {
                        name = try scanner.readString()
                    } else if !key.escaped && first == quote && scanner.bytes(key.range, equal: "action") {
                        let value = try scanner.readRawString()
                        isSnapshot = scanner.bytes(value.range, equal: "snapshot")
                    } else if !key.escaped && first != quote && scanner.bytes(key.range, equal: "severity") {
                        let range = try scanner.skipValue(depth: 3)
                        severity = Int(String(decoding: UnsafeRawBufferPointer(rebasing: scanner.bytes[range]), as: UTF8.self))
                    } else {
                        try scanner.skipValue(depth: 3)
                    }
                    let next = try scanner.peek()
                    scanner.advance()
                    if next == UInt8(ascii: "}") { break }
                    if next != UInt8(ascii: ",") { throw JSONError("expected ',' or '}'", at: scanner.index - 1) }
                }
            }
            let range = start..<scanner.index
            let json = scanner.sawWhitespace
                ? ByteBuffer(bytes: scanner.compacted(range))
                : body.getSlice(at: body.readerIndex + range.lowerBound, length: range.count)!
            return Item(json: json, name: name, isSnapshot: isSnapshot, severity: severity)
        }
    }
}
