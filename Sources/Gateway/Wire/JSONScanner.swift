import NIOCore

/// A strict JSON reader over raw bytes that is lenient in exactly one way: bytes inside strings are
/// not checked for valid UTF-8.
///
/// osquery does not validate UTF-8 (docs/protocol.md#logger), so table data can put raw bytes inside JSON
/// strings; rejecting such a batch would make the agent retry it forever. Everything else follows
/// RFC 8259 as RapidJSON does: no comments, no trailing commas, no raw control characters in strings.
///
/// The scanner walks bytes without building a tree, so the logger path can find each `data` item's
/// byte range and read the few fields it needs with no per-item allocation beyond the record itself.
/// Nesting is capped (`maxDepth`) so hostile input cannot exhaust the stack.
struct JSONScanner {
    let bytes: UnsafeRawBufferPointer
    /// Where the next byte is read. Only the scanner's own methods move it; they are spread over
    /// this file, `JSONScanner+Strings.swift` and `JSONScanner+Scalars.swift`, so the setter cannot
    /// be private.
    var index: Int = 0
    /// Set when whitespace was skipped; callers reset it to learn whether a value needs compacting.
    var sawWhitespace = false
    let maxDepth: Int

    init(_ bytes: UnsafeRawBufferPointer, maxDepth: Int = 128) {
        self.bytes = bytes
        self.maxDepth = maxDepth
    }

    // MARK: - Structure

    /// Skips spaces, tabs, carriage returns and newlines.
    @inline(__always)
    mutating func skipWhitespace() {
        while index < bytes.count {
            switch bytes[index] {
            case 0x20, 0x09, 0x0A, 0x0D:
                index += 1
                sawWhitespace = true
            default:
                return
            }
        }
    }

    /// The next non-whitespace byte, without consuming it.
    @inline(__always)
    mutating func peek() throws(JSONError) -> UInt8 {
        skipWhitespace()
        guard index < bytes.count else { throw JSONError("unexpected end of JSON", at: index) }
        return bytes[index]
    }

    @inline(__always)
    mutating func expect(_ byte: UInt8) throws(JSONError) {
        guard try peek() == byte else {
            throw JSONError("expected '\(Character(UnicodeScalar(byte)))'", at: index)
        }
        index += 1
    }

    /// Consumes the byte `peek()` returned.
    @inline(__always)
    mutating func advance() { index += 1 }

    /// Requires that only whitespace remains.
    mutating func expectEnd() throws(JSONError) {
        skipWhitespace()
        if index != bytes.count { throw JSONError("unexpected data after the JSON value", at: index) }
    }

    /// Walks an object, calling `body` with each key; `body` must consume the member's value.
    mutating func forEachMember(
        depth: Int = 0, _ body: (inout JSONScanner, String) throws(JSONError) -> Void
    ) throws(JSONError) {
        guard depth < maxDepth else { throw JSONError("JSON nested too deeply", at: index) }
        try expect(UInt8(ascii: "{"))
        if try peek() == UInt8(ascii: "}") {
            index += 1
            return
        }
        while true {
            guard try peek() == UInt8(ascii: "\"") else { throw JSONError("expected a string key", at: index) }
            let key = try readString()
            try expect(UInt8(ascii: ":"))
            try body(&self, key)
            let next = try peek()
            index += 1
            if next == UInt8(ascii: "}") { return }
            if next != UInt8(ascii: ",") { throw JSONError("expected ',' or '}'", at: index - 1) }
        }
    }

    /// Walks an array, calling `body` once per element; `body` must consume the element.
    mutating func forEachElement(
        depth: Int = 0, _ body: (inout JSONScanner) throws(JSONError) -> Void
    ) throws(JSONError) {
        guard depth < maxDepth else { throw JSONError("JSON nested too deeply", at: index) }
        try expect(UInt8(ascii: "["))
        if try peek() == UInt8(ascii: "]") {
            index += 1
            return
        }
        while true {
            try body(&self)
            let next = try peek()
            index += 1
            if next == UInt8(ascii: "]") { return }
            if next != UInt8(ascii: ",") { throw JSONError("expected ',' or ']'", at: index - 1) }
        }
    }

    /// Validates and skips one value of any type; returns the range it occupied.
    @discardableResult
    mutating func skipValue(depth: Int = 0) throws(JSONError) -> Range<Int> {
        let first = try peek()
        let start = index
        switch first {
        case UInt8(ascii: "{"):
            try forEachMember(depth: depth) { (scanner, _) throws(JSONError) in
                try scanner.skipValue(depth: depth + 1)
            }
        case UInt8(ascii: "["):
            try forEachElement(depth: depth) { (scanner) throws(JSONError) in
                try scanner.skipValue(depth: depth + 1)
            }
        case UInt8(ascii: "\""):
            try skipString()
        case UInt8(ascii: "t"):
            try skipLiteral("true")
        case UInt8(ascii: "f"):
            try skipLiteral("false")
        case UInt8(ascii: "n"):
            try skipLiteral("null")
        default:
            try skipNumber()
        }
        return start..<index
    }

    // MARK: - Trees

    /// Reads any value into a `JSONValue` tree (for small bodies and config files).
    mutating func readValue(depth: Int = 0) throws(JSONError) -> JSONValue {
        switch try peek() {
        case UInt8(ascii: "{"):
            var members: [(String, JSONValue)] = []
            try forEachMember(depth: depth) { (scanner, key) throws(JSONError) in
                members.append((key, try scanner.readValue(depth: depth + 1)))
            }
            return .object(JSONObject(members))
        case UInt8(ascii: "["):
            var elements: [JSONValue] = []
            try forEachElement(depth: depth) { (scanner) throws(JSONError) in
                elements.append(try scanner.readValue(depth: depth + 1))
            }
            return .array(elements)
        case UInt8(ascii: "\""):
            return .string(try readString())
        case UInt8(ascii: "t"), UInt8(ascii: "f"):
            return .bool(try readBool())
        case UInt8(ascii: "n"):
            try skipLiteral("null")
            return .null
        default:
            let range = try skipNumber()
            return .number(String(decoding: UnsafeRawBufferPointer(rebasing: bytes[range]), as: UTF8.self))
        }
    }
}

/// A JSON syntax or type error, with the byte offset where it was found.
struct JSONError: Error, CustomStringConvertible {
    var message: String
    var offset: Int

    init(_ message: String, at offset: Int) {
        self.message = message
        self.offset = offset
    }

    var description: String { "\(message) (at byte \(offset))" }
}

extension JSONScanner {
    /// Copies `range` of the input, dropping whitespace outside strings, so the value fits on one line.
    func compacted(_ range: Range<Int>) -> [UInt8] { Self.compact(bytes, range) }

    /// Copies `range` of `bytes`, dropping whitespace outside strings.
    static func compact(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(range.count)
        var inString = false
        var escaped = false
        for i in range {
            let byte = bytes[i]
            if inString {
                out.append(byte)
                if escaped {
                    escaped = false
                } else if byte == UInt8(ascii: "\\") {
                    escaped = true
                } else if byte == UInt8(ascii: "\"") {
                    inString = false
                }
            } else {
                switch byte {
                case 0x20, 0x09, 0x0A, 0x0D: continue
                case UInt8(ascii: "\""): inString = true; out.append(byte)
                default: out.append(byte)
                }
            }
        }
        return out
    }
}

extension ByteBuffer {
    /// Runs `body` with a scanner over the readable bytes; offsets it reports are relative to `readerIndex`.
    func scanJSON<T>(_ body: (inout JSONScanner) throws(JSONError) -> T) throws(JSONError) -> T {
        let result = withUnsafeReadableBytes { raw -> Result<T, JSONError> in
            var scanner = JSONScanner(raw)
            do throws(JSONError) {
                return .success(try body(&scanner))
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }
}
