/// Strings: keys, values and their escapes. Bytes inside strings are not checked for UTF-8 (see
/// `JSONScanner`); decoding turns invalid UTF-8 and lone surrogates into U+FFFD.
extension JSONScanner {
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
}
