import NIOCore
import Support

/// A request body for the backend, as slices of the agent's body plus what the gateway puts in.
///
/// The agent's body is forwarded with one top-level member replaced: `node_key` (the gateway's key
/// becomes the backend's) or the enroll secret (when the backend expects its own). The members kept
/// are slices of the agent's buffer, never copied, so a large distributed write or carve block is
/// not held twice; the replaced member is dropped everywhere it appears (a body naming it twice
/// would be read differently by different JSON parsers) and added once at the end.
struct UpstreamBody: Sendable {
    var parts: [ByteBuffer]

    init(_ buffer: ByteBuffer) {
        parts = [buffer]
    }

    init(parts: [ByteBuffer]) {
        self.parts = parts
    }

    var length: Int { parts.reduce(0) { $0 + $1.readableBytes } }

    /// `{"node_key":<key>}`: the body of config and distributed read requests.
    static func nodeKey(_ key: String) -> UpstreamBody {
        UpstreamBody(ByteBuffer(string: "{\"node_key\":\(JSONString.quoted(key))}"))
    }

    /// `body` (a JSON object) without its top-level `name` members, with `"name": value` added
    /// (`value` is JSON text), or only without them when `value` is nil.
    /// - Throws: `JSONError` when `body` is not a JSON object.
    static func replacing(_ name: String, with value: String?, in body: ByteBuffer) throws(JSONError) -> UpstreamBody {
        // Byte ranges (relative to the body's reader index) of runs of members to keep.
        let runs = try body.scanJSON { (scanner) throws(JSONError) -> [Range<Int>] in
            var runs: [Range<Int>] = []
            var run: Range<Int>?
            try scanner.expect(UInt8(ascii: "{"))
            if try scanner.peek() == UInt8(ascii: "}") {
                scanner.advance()
            } else {
                while true {
                    guard try scanner.peek() == UInt8(ascii: "\"") else { throw JSONError("expected a string key", at: scanner.index) }
                    let start = scanner.index
                    let key = try scanner.readString()
                    try scanner.expect(UInt8(ascii: ":"))
                    try scanner.skipValue(depth: 1)
                    let end = scanner.index
                    if key == name {
                        if let kept = run { runs.append(kept) }
                        run = nil
                    } else {
                        run = (run?.lowerBound ?? start)..<end
                    }
                    let next = try scanner.peek()
                    scanner.advance()
                    if next == UInt8(ascii: "}") { break }
                    if next != UInt8(ascii: ",") { throw JSONError("expected ',' or '}'", at: scanner.index - 1) }
                }
            }
            try scanner.expectEnd()
            if let kept = run { runs.append(kept) }
            return runs
        }
        var parts = [ByteBuffer(string: "{")]
        for (i, range) in runs.enumerated() {
            if i > 0 { parts.append(ByteBuffer(string: ",")) }
            parts.append(body.getSlice(at: body.readerIndex + range.lowerBound, length: range.count)!)
        }
        if let value {
            parts.append(ByteBuffer(string: (runs.isEmpty ? "" : ",") + JSONString.quoted(name) + ":" + value + "}"))
        } else {
            parts.append(ByteBuffer(string: "}"))
        }
        return UpstreamBody(parts: parts)
    }

    /// The parts as one buffer (tests, small bodies).
    var joined: ByteBuffer {
        guard parts.count > 1 else { return parts.first ?? ByteBuffer() }
        var buffer = ByteBuffer()
        buffer.reserveCapacity(length)
        for part in parts { buffer.writeImmutableBuffer(part) }
        return buffer
    }
}

/// A body's parts as the async sequence AsyncHTTPClient streams from: each part written as it is
/// (a slice of the agent's buffer, never copied), and iterable again from the start, as a request
/// that is sent again needs (an `AsyncStream` can be read only once, and costs a lock per part).
struct UpstreamBodyParts: AsyncSequence, Sendable {
    typealias Element = ByteBuffer

    let parts: [ByteBuffer]

    struct AsyncIterator: AsyncIteratorProtocol {
        let parts: [ByteBuffer]
        var index = 0

        mutating func next() async -> ByteBuffer? {
            guard index < parts.count else { return nil }
            defer { index += 1 }
            return parts[index]
        }
    }

    func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(parts: parts)
    }
}
