import HTTPTypes
import Hummingbird
import NIOCore
import Support

/// The success answers of the osquery endpoints (docs/protocol.md): 200 with a JSON body.
///
/// osquery judges an answer by its body, not its status (docs/protocol.md#status-codes): `{}` is
/// what makes it delete a logger batch or distributed results, so `accepted` goes out only after
/// the records are durable. Failures are `OsqueryError`'s bodies.
enum OsqueryResponse {
    /// enroll: the new key, sent this once, and `node_invalid: false`.
    static func enrolled(nodeKey: String) -> Response {
        json(ByteBuffer(string: "{\"node_key\":\(JSONString.quoted(nodeKey)),\"node_invalid\":false}"))
    }

    /// config: the rendered config (`json`, and the same `gzipped`), gzipped only for an agent
    /// that accepts it (osquery 5.21+ `--tls_accept_gzip`); others cannot read it.
    static func config(json config: ByteBuffer, gzipped: ByteBuffer, acceptsGzip: Bool) -> Response {
        guard acceptsGzip else { return json(config) }
        return Response(
            status: .ok, headers: [.contentType: "application/json", .contentEncoding: "gzip"],
            body: .init(byteBuffer: gzipped))
    }

    /// config for a `--tls_node_api` agent: `{"config":"<the config as JSON text>"}`, which osquery
    /// unwraps (plugins/config/tls_config.cpp). Never gzipped: every agent reads a plain answer, and
    /// the node API is too rare to keep a second compressed copy of each config.
    ///
    /// osquery also turns `\u00XX` in the unwrapped text into raw bytes (`unescapeUnicode`), so a
    /// config string holding a control character other than tab, CR or LF cannot reach such an agent.
    static func nodeAPIConfig(json config: ByteBuffer) -> Response {
        var out = Array("{\"config\":".utf8)
        out.reserveCapacity(config.readableBytes + config.readableBytes / 8 + 16)
        JSONString.write(utf8: config.readableBytesView, to: &out)
        out.append(UInt8(ascii: "}"))
        return json(ByteBuffer(bytes: out))
    }

    /// logger and distributed write: the batch is stored, the agent may drop it.
    static var accepted: Response { json(emptyObject) }

    /// carve start: the session the blocks name.
    static func carveStarted(sessionID: String) -> Response {
        json(ByteBuffer(string: "{\"session_id\":\(JSONString.quoted(sessionID))}"))
    }

    /// distributed read: no queries for this node.
    static var noQueries: Response { json(noQueriesObject) }

    static func json(_ body: ByteBuffer) -> Response {
        Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: body))
    }

    private static let emptyObject = ByteBuffer(string: "{}")
    private static let noQueriesObject = ByteBuffer(string: "{\"queries\":{}}")
}
