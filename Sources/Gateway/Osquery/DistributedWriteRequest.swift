import NIOCore

/// A distributed write body (docs/protocol.md#distributed): per query id, its rows, status, message
/// and stats, each kept as the agent's own JSON. The ingest step makes each id one `distributed`
/// record (`LogBatch`).
struct DistributedWriteRequest: Sendable, NodeKeyed {
    struct Result: Sendable {
        var id: String
        var rows: ByteBuffer?
        var status: ByteBuffer?
        var message: ByteBuffer?
        var stats: ByteBuffer?
    }

    var nodeKey: String?
    var results: [Result]

    /// - Throws: `OsqueryBodyError` for malformed JSON or wrong types.
    init(body: ByteBuffer) throws(OsqueryBodyError) {
        let parser = try body.parseOsqueryBody("distributed write", with: Parser(body: body))
        self.nodeKey = parser.nodeKey
        self.results = parser.order.map { parser.byID[$0]! }
    }

    /// The four per-id maps of the body, gathered by id in order of first appearance.
    private struct Parser: OsqueryBodyParser {
        enum Section { case rows, status, message, stats }

        let body: ByteBuffer
        var nodeKey: String?
        var order: [String] = []
        var byID: [String: Result] = [:]

        mutating func parse(_ scanner: inout JSONScanner) throws(JSONError) {
            try scanner.forEachMember { (scanner, key) throws(JSONError) in
                switch key {
                case "node_key" where nodeKey == nil: nodeKey = try scanner.readString(for: "node_key")
                case "queries": try section(.rows, &scanner)
                case "statuses": try section(.status, &scanner)
                case "messages": try section(.message, &scanner)
                case "stats": try section(.stats, &scanner)
                default: try scanner.skipValue(depth: 1)
                }
            }
            try scanner.expectEnd()
        }

        private mutating func section(_ section: Section, _ scanner: inout JSONScanner) throws(JSONError) {
            guard try scanner.peek() == UInt8(ascii: "{") else { throw JSONError("\(section) must be an object", at: scanner.index) }
            try scanner.forEachMember(depth: 1) { (scanner, id) throws(JSONError) in
                let first = try scanner.peek()
                let valid: Bool
                switch section {
                case .rows: valid = first == UInt8(ascii: "[")
                case .message: valid = first == UInt8(ascii: "\"")
                case .stats: valid = first == UInt8(ascii: "{")
                case .status: valid = first == UInt8(ascii: "-") || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(first)
                }
                guard valid else { throw JSONError("\(section) of \(id) has the wrong type", at: scanner.index) }
                scanner.sawWhitespace = false
                let range = try scanner.skipValue(depth: 2)
                let value = scanner.sawWhitespace
                    ? ByteBuffer(bytes: scanner.compacted(range))
                    : body.getSlice(at: body.readerIndex + range.lowerBound, length: range.count)!
                if byID[id] == nil {
                    order.append(id)
                    byID[id] = Result(id: id)
                }
                switch section {
                case .rows: byID[id]!.rows = value
                case .status: byID[id]!.status = value
                case .message: byID[id]!.message = value
                case .stats: byID[id]!.stats = value
                }
            }
        }
    }
}
