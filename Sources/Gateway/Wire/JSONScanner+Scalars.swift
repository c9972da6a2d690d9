/// Literals and numbers, checked against the RFC 8259 grammar.
extension JSONScanner {
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

    private func isDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }
}
