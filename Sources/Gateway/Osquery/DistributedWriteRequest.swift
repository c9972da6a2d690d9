import Foundation
import NIOCore
import Sinks

/// A distributed write body (docs/protocol.md#distributed): per query id, its rows, status, message
/// and stats.
///
/// Each id becomes one `distributed` record:
/// `{"name":<id>,"hostIdentifier":…,"unixTime":…,"status":…,"message":…,"stats":…,"rows":[…]}`,
/// with the agent's own JSON for every value (ids missing from a map get `0`, `""`, `{}` or `[]`).
struct DistributedWriteRequest: Sendable {
    struct Result: Sendable {
        var id: String
        var rows: ByteBuffer?
        var status: ByteBuffer?
        var message: ByteBuffer?
        var stats: ByteBuffer?
    }

    var nodeKey: String?
    var results: [Result]

    /// - Throws: `OsqueryError.badRequest` for malformed JSON or wrong types.
    init(body: ByteBuffer) throws {
        let parser: Parser
        do {
            parser = try body.scanJSON { (scanner) throws(JSONError) -> Parser in
                var parser = Parser(body: body)
                try parser.parse(&scanner)
                return parser
            }
        } catch {
            throw OsqueryError.badRequest("invalid distributed write body: \(error)")
        }
        self.nodeKey = parser.nodeKey
        self.results = parser.order.map { parser.byID[$0]! }
    }

    /// The four per-id maps of the body, gathered by id in order of first appearance.
    private struct Parser {
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

    /// One record per query id, for `node`.
    func records(for node: NodeRecord, receivedAt: Date) -> [LogRecord] {
        let host = JSONValue.quoted(node.hostIdentifier)
        let time = Int(receivedAt.timeIntervalSince1970)
        return results.map { result in
            var json = ByteBuffer()
            json.writeString("{\"name\":\(JSONValue.quoted(result.id)),\"hostIdentifier\":\(host),\"unixTime\":\(time),\"status\":")
            json.writeImmutableBuffer(result.status ?? ByteBuffer(string: "0"))
            json.writeString(",\"message\":")
            json.writeImmutableBuffer(result.message ?? ByteBuffer(string: "\"\""))
            json.writeString(",\"stats\":")
            json.writeImmutableBuffer(result.stats ?? ByteBuffer(string: "{}"))
            json.writeString(",\"rows\":")
            json.writeImmutableBuffer(result.rows ?? ByteBuffer(string: "[]"))
            json.writeString("}")
            return LogRecord(
                kind: .distributed, nodeID: node.id, hostIdentifier: node.hostIdentifier, secretName: node.secretName,
                queryName: result.id, platform: OsqueryPlatform.primary(platformType: node.platformType),
                receivedAt: receivedAt, json: json)
        }
    }
}
