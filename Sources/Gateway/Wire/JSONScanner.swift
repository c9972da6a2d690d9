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
    private(set) var index: Int = 0
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

    /// Reads a string's raw bytes (between the quotes) without decoding them, for comparing keys and
    /// short values on the hot path; `escaped` is true when the bytes hold escapes.
    mutating func readRawString() throws(JSONError) -> (range: Range<Int>, escaped: Bool) {
        try expect(UInt8(ascii: "\""))
        let start = index
        var escaped = false
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "\"") {
                index += 1
                return (start..<(index - 1), escaped)
            }
            if byte == UInt8(ascii: "\\") {
                escaped = true
                index += 1
                try skipEscape()
                continue
            }
            if byte < 0x20 { throw JSONError("control character in string", at: index) }
            index += 1
        }
        throw JSONError("unterminated string", at: index)
    }

    /// Whether the input bytes in `range` are exactly `literal`.
    func bytes(_ range: Range<Int>, equal literal: StaticString) -> Bool {
        guard range.count == literal.utf8CodeUnitCount else { return false }
        let expected = UnsafeRawBufferPointer(start: literal.utf8Start, count: range.count)
        var i = 0
        for j in range {
            if bytes[j] != expected[i] { return false }
            i += 1
        }
        return true
    }

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

    // MARK: - Scalars

    mutating func skipLiteral(_ literal: StaticString) throws(JSONError) {
        let count = literal.utf8CodeUnitCount
        guard index + count <= bytes.count else { throw JSONError("invalid literal", at: index) }
        let expected = UnsafeRawBufferPointer(start: literal.utf8Start, count: count)
        for i in 0..<count where bytes[index + i] != expected[i] {
            throw JSONError("invalid literal", at: index)
        }
        index += count
    }

    /// Reads `true` or `false`.
    mutating func readBool() throws(JSONError) -> Bool {
        switch try peek() {
        case UInt8(ascii: "t"): try skipLiteral("true"); return true
        case UInt8(ascii: "f"): try skipLiteral("false"); return false
        default: throw JSONError("expected a boolean", at: index)
        }
    }

    /// Skips a number, checking RFC 8259 grammar; returns its text range.
    @discardableResult
    mutating func skipNumber() throws(JSONError) -> Range<Int> {
        skipWhitespace()
        let start = index
        if index < bytes.count && bytes[index] == UInt8(ascii: "-") { index += 1 }
        guard index < bytes.count, isDigit(bytes[index]) else { throw JSONError("invalid value", at: start) }
        if bytes[index] == UInt8(ascii: "0") {
            index += 1
        } else {
            while index < bytes.count && isDigit(bytes[index]) { index += 1 }
        }
        if index < bytes.count && bytes[index] == UInt8(ascii: ".") {
            index += 1
            guard index < bytes.count, isDigit(bytes[index]) else { throw JSONError("invalid number", at: start) }
            while index < bytes.count && isDigit(bytes[index]) { index += 1 }
        }
        if index < bytes.count && (bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E")) {
            index += 1
            if index < bytes.count && (bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-")) {
                index += 1
            }
            guard index < bytes.count, isDigit(bytes[index]) else { throw JSONError("invalid number", at: start) }
            while index < bytes.count && isDigit(bytes[index]) { index += 1 }
        }
        return start..<index
    }

    /// Reads an integer that fits in `Int`; other numbers are an error.
    mutating func readInteger() throws(JSONError) -> Int {
        let range = try skipNumber()
        var value = 0
        var negative = false
        for i in range {
            let byte = bytes[i]
            if byte == UInt8(ascii: "-") {
                negative = true
                continue
            }
            guard isDigit(byte) else { throw JSONError("expected an integer", at: range.lowerBound) }
            let (m, o1) = value.multipliedReportingOverflow(by: 10)
            let (a, o2) = m.addingReportingOverflow(Int(byte - UInt8(ascii: "0")))
            if o1 || o2 { throw JSONError("integer out of range", at: range.lowerBound) }
            value = a
        }
        return negative ? -value : value
    }

    /// Skips a string, checking escapes and control characters; bytes are not checked for UTF-8.
    mutating func skipString() throws(JSONError) {
        try expect(UInt8(ascii: "\""))
        while index < bytes.count {
            let byte = bytes[index]
            index += 1
            switch byte {
            case UInt8(ascii: "\""):
                return
            case UInt8(ascii: "\\"):
                try skipEscape()
            case 0..<0x20:
                throw JSONError("control character in string", at: index - 1)
            default:
                continue
            }
        }
        throw JSONError("unterminated string", at: index)
    }

    mutating func skipEscape() throws(JSONError) {
        guard index < bytes.count else { throw JSONError("unterminated string", at: index) }
        let byte = bytes[index]
        index += 1
        switch byte {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"),
            UInt8(ascii: "f"), UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
            return
        case UInt8(ascii: "u"):
            _ = try readHex4()
        default:
            throw JSONError("invalid escape in string", at: index - 1)
        }
    }

    private mutating func readHex4() throws(JSONError) -> UInt32 {
        guard index + 4 <= bytes.count else { throw JSONError("invalid \\u escape", at: index) }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = bytes[index]
            index += 1
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: throw JSONError("invalid \\u escape", at: index - 1)
            }
            value = value << 4 | UInt32(digit)
        }
        return value
    }

    /// Reads a string, decoding escapes; invalid UTF-8 and lone surrogates become U+FFFD.
    mutating func readString() throws(JSONError) -> String {
        try expect(UInt8(ascii: "\""))
        let start = index
        // Fast path: no escapes, so the bytes are the string.
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "\"") {
                let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
                index += 1
                return text
            }
            if byte == UInt8(ascii: "\\") { break }
            if byte < 0x20 { throw JSONError("control character in string", at: index) }
            index += 1
        }
        var decoded = [UInt8](UnsafeRawBufferPointer(rebasing: bytes[start..<index]))
        while index < bytes.count {
            let byte = bytes[index]
            index += 1
            switch byte {
            case UInt8(ascii: "\""):
                return String(decoding: decoded, as: UTF8.self)
            case UInt8(ascii: "\\"):
                guard index < bytes.count else { throw JSONError("unterminated string", at: index) }
                let escaped = bytes[index]
                index += 1
                switch escaped {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): decoded.append(escaped)
                case UInt8(ascii: "b"): decoded.append(0x08)
                case UInt8(ascii: "f"): decoded.append(0x0C)
                case UInt8(ascii: "n"): decoded.append(0x0A)
                case UInt8(ascii: "r"): decoded.append(0x0D)
                case UInt8(ascii: "t"): decoded.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = try readHex4()
                    if (0xD800..<0xDC00).contains(scalar), index + 6 <= bytes.count,
                        bytes[index] == UInt8(ascii: "\\"), bytes[index + 1] == UInt8(ascii: "u")
                    {
                        let save = index
                        index += 2
                        let low = try readHex4()
                        if (0xDC00..<0xE000).contains(low) {
                            scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                        } else {
                            index = save
                        }
                    }
                    let unicode = Unicode.Scalar(scalar) ?? "\u{FFFD}"
                    decoded.append(contentsOf: String(Character(unicode)).utf8)
                default:
                    throw JSONError("invalid escape in string", at: index - 1)
                }
            case 0..<0x20:
                throw JSONError("control character in string", at: index - 1)
            default:
                decoded.append(byte)
            }
        }
        throw JSONError("unterminated string", at: index)
    }

    /// Reads a string value, or reports `what` as having the wrong type.
    mutating func readString(for what: String) throws(JSONError) -> String {
        guard try peek() == UInt8(ascii: "\"") else { throw JSONError("\(what) must be a string", at: index) }
        return try readString()
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

    private func isDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }
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
