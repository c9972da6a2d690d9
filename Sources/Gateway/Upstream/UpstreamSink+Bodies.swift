import NIOCore
import Sinks
import Support

/// The request bodies the upstream sink posts: osquery's own logger and distributed write bodies.
extension UpstreamSink {
    /// One request body and the batch positions of the records in it.
    struct Post {
        var call: UpstreamClient.Call
        var buffer: ByteBuffer
        var indices: [Int]
    }

    /// The bodies for `group`: one logger body, or distributed write bodies (a new one whenever a
    /// query id comes again, so no body names an id twice); `unreadable` are distributed records
    /// whose JSON is not the gateway's own result record.
    static func bodies(_ group: Group, _ batch: [LogRecord], nodeKey: String) -> (posts: [Post], unreadable: [Int]) {
        if group.kind != .distributed {
            var body = ByteBuffer()
            body.reserveCapacity(group.indices.reduce(64) { $0 + batch[$1].json.readableBytes + 1 })
            body.writeString("{\"node_key\":\(JSONString.quoted(nodeKey)),\"log_type\":\"\(group.kind.rawValue)\",\"data\":[")
            for (n, i) in group.indices.enumerated() {
                if n > 0 { body.writeString(",") }
                body.writeImmutableBuffer(batch[i].json)
            }
            body.writeString("]}")
            return ([Post(call: .logger, buffer: body, indices: group.indices)], [])
        }
        var posts: [Post] = []
        var unreadable: [Int] = []
        var pending = DistributedWriteBody()
        for i in group.indices {
            guard let result = DistributedResult(batch[i].json) else {
                unreadable.append(i)
                continue
            }
            if pending.ids.contains(result.id) {
                posts.append(Post(call: .distributedWrite, buffer: pending.body(nodeKey: nodeKey), indices: pending.indices))
                pending = DistributedWriteBody()
            }
            pending.add(result, index: i)
        }
        if !pending.indices.isEmpty {
            posts.append(Post(call: .distributedWrite, buffer: pending.body(nodeKey: nodeKey), indices: pending.indices))
        }
        return (posts, unreadable)
    }
}

/// One `distributed` record as the ingest step writes it
/// (`{"name","hostIdentifier","unixTime","status","message","stats","rows"}`), its values as raw JSON.
struct DistributedResult {
    var id: String
    var rows: ByteBuffer
    var status: ByteBuffer
    var message: ByteBuffer
    var stats: ByteBuffer

    init?(_ json: ByteBuffer) {
        var id: String?
        var values: [String: ByteBuffer] = [:]
        do throws(JSONError) {
            try json.scanJSON { (scanner) throws(JSONError) -> Void in
                try scanner.forEachMember { (scanner, key) throws(JSONError) in
                    let first = try scanner.peek()
                    switch key {
                    case "name" where first == UInt8(ascii: "\""):
                        id = try scanner.readString()
                    case "rows", "status", "message", "stats":
                        let range = try scanner.skipValue(depth: 1)
                        values[key] = json.getSlice(at: json.readerIndex + range.lowerBound, length: range.count)
                    default:
                        try scanner.skipValue(depth: 1)
                    }
                }
                try scanner.expectEnd()
            }
        } catch {
            return nil
        }
        guard let id else { return nil }
        self.id = id
        rows = values["rows"] ?? ByteBuffer(string: "[]")
        status = values["status"] ?? ByteBuffer(string: "0")
        message = values["message"] ?? ByteBuffer(string: "\"\"")
        stats = values["stats"] ?? ByteBuffer(string: "{}")
    }
}

/// A distributed write body being assembled from result records.
struct DistributedWriteBody {
    private(set) var ids = Set<String>()
    private(set) var indices: [Int] = []
    private var results: [DistributedResult] = []

    mutating func add(_ result: DistributedResult, index: Int) {
        ids.insert(result.id)
        indices.append(index)
        results.append(result)
    }

    /// `{"queries":{…},"statuses":{…},"messages":{…},"stats":{…},"node_key":…}`, as osquery sends it.
    func body(nodeKey: String) -> ByteBuffer {
        var body = ByteBuffer()
        func section(_ name: String, _ value: (DistributedResult) -> ByteBuffer) {
            body.writeString("\"\(name)\":{")
            for (n, result) in results.enumerated() {
                if n > 0 { body.writeString(",") }
                body.writeString(JSONString.quoted(result.id) + ":")
                body.writeImmutableBuffer(value(result))
            }
            body.writeString("},")
        }
        body.writeString("{")
        section("queries") { $0.rows }
        section("statuses") { $0.status }
        section("messages") { $0.message }
        section("stats") { $0.stats }
        body.writeString("\"node_key\":\(JSONString.quoted(nodeKey))}")
        return body
    }
}
