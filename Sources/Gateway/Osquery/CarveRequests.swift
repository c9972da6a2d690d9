import Foundation
import NIOCore

/// The carve start body (docs/protocol.md#carving):
/// `{"block_count": 3, "block_size": 8192, "carve_size": 20480, "carve_id": "<guid>", "request_id": "<uuid>", "node_key": "..."}`.
/// The three sizes are JSON integers (osquery writes them as unsigned numbers); every field but
/// `node_key` is required.
struct CarveStartRequest: Sendable, NodeKeyed {
    var nodeKey: String?
    var blockCount = -1
    var blockSize = -1
    var carveSize = -1
    var carveID = ""
    var requestID: String?

    /// - Throws: `OsqueryBodyError` for malformed JSON, wrong types or a missing field.
    init(body: ByteBuffer) throws(OsqueryBodyError) {
        self = try body.scanOsqueryBody("carve start") { (scanner) throws(JSONError) -> CarveStartRequest in
            var request = CarveStartRequest()
            try request.parse(&scanner)
            return request
        }
        for (name, value) in [("block_count", blockCount), ("block_size", blockSize), ("carve_size", carveSize)] where value < 0 {
            throw OsqueryBodyError("invalid carve start body: \(name) is missing")
        }
        if carveID.isEmpty { throw OsqueryBodyError("invalid carve start body: carve_id is missing") }
        if requestID == nil { throw OsqueryBodyError("invalid carve start body: request_id is missing") }
    }

    private init() {}

    private mutating func parse(_ scanner: inout JSONScanner) throws(JSONError) {
        try scanner.forEachMember { (scanner, key) throws(JSONError) in
            switch key {
            case "block_count": blockCount = try scanner.readCount(for: "block_count")
            case "block_size": blockSize = try scanner.readCount(for: "block_size")
            case "carve_size": carveSize = try scanner.readCount(for: "carve_size")
            case "carve_id": carveID = try scanner.readString(for: "carve_id")
            case "request_id": requestID = try scanner.readString(for: "request_id")
            case "node_key" where nodeKey == nil: nodeKey = try scanner.readString(for: "node_key")
            default: try scanner.skipValue(depth: 1)
            }
        }
        try scanner.expectEnd()
    }
}

/// A carve block body: `{"block_id": 0, "session_id": "...", "request_id": "...", "data": "<base64>"}`.
/// It carries no node key (only osquery 5.23+'s `Authorization: NodeKey` header does).
struct CarveBlockRequest: Sendable {
    var blockID = -1
    var sessionID = ""
    var requestID: String?
    /// The block's bytes, decoded from standard base64.
    var data = Data()

    /// - Throws: `OsqueryBodyError` for malformed JSON, wrong types, a missing field or data that is
    ///   not base64.
    init(body: ByteBuffer) throws(OsqueryBodyError) {
        var encoded: String?
        var request = CarveBlockRequest()
        try body.scanOsqueryBody("carve block") { (scanner) throws(JSONError) -> Void in
            try scanner.forEachMember { (scanner, key) throws(JSONError) in
                switch key {
                case "block_id": request.blockID = try scanner.readCount(for: "block_id")
                case "session_id": request.sessionID = try scanner.readString(for: "session_id")
                case "request_id": request.requestID = try scanner.readString(for: "request_id")
                case "data" where encoded == nil: encoded = try scanner.readString(for: "data")
                default: try scanner.skipValue(depth: 1)
                }
            }
            try scanner.expectEnd()
        }
        if request.blockID < 0 { throw OsqueryBodyError("invalid carve block body: block_id is missing") }
        if request.sessionID.isEmpty { throw OsqueryBodyError("invalid carve block body: session_id is missing") }
        guard let encoded else { throw OsqueryBodyError("invalid carve block body: data is missing") }
        guard let data = Data(base64Encoded: encoded) else { throw OsqueryBodyError("invalid carve block body: data is not base64") }
        request.data = data
        self = request
    }

    private init() {}
}

extension JSONScanner {
    /// Reads a non-negative integer, or reports `what` as having the wrong type.
    mutating func readCount(for what: String) throws(JSONError) -> Int {
        let first = try peek()
        guard first >= UInt8(ascii: "0") && first <= UInt8(ascii: "9") else {
            throw JSONError("\(what) must be a non-negative integer", at: index)
        }
        return try readInteger()
    }
}
