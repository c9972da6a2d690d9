/// The one JSON string writer: every string the gateway puts into JSON it builds by hand (response
/// bodies, dead-letter lines, forwarder envelopes, canonical configs) goes through here, so they all
/// escape alike.
///
/// Escapes `"` and `\`, writes `\n`, `\r` and `\t` short, every other control character below
/// U+0020 as `\u00XX` (lower-case hex), and copies everything else as UTF-8 unchanged: non-ASCII
/// text stays readable and the output is the shortest valid JSON.
public enum JSONString {
    /// Appends `text` as a JSON string literal, quotes included.
    public static func write(_ text: String, to out: inout [UInt8]) {
        write(utf8: text.utf8, to: &out)
    }

    /// Appends UTF-8 `bytes` as a JSON string literal, quotes included. Bytes that are not valid
    /// UTF-8 are copied as they are (a record keeps exactly what the agent sent).
    public static func write(utf8 bytes: some Sequence<UInt8>, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for byte in bytes {
            switch byte {
            case UInt8(ascii: "\""): out.append(contentsOf: [0x5C, 0x22])
            case UInt8(ascii: "\\"): out.append(contentsOf: [0x5C, 0x5C])
            case 0x0A: out.append(contentsOf: [0x5C, UInt8(ascii: "n")])
            case 0x0D: out.append(contentsOf: [0x5C, UInt8(ascii: "r")])
            case 0x09: out.append(contentsOf: [0x5C, UInt8(ascii: "t")])
            case 0..<0x20:
                out.append(contentsOf: [0x5C, UInt8(ascii: "u"), 0x30, 0x30, Hex.digits[Int(byte >> 4)], Hex.digits[Int(byte & 0xF)]])
            default: out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
    }

    /// `text` as a JSON string literal, quotes included.
    public static func quoted(_ text: String) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(text.utf8.count + 2)
        write(text, to: &out)
        return String(decoding: out, as: UTF8.self)
    }
}
