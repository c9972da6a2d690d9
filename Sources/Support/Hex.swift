/// Lower-case hexadecimal, the one encoding of bytes as text here: node keys, certificate
/// fingerprints, digests in logs and file names.
public enum Hex {
    /// `0`-`9`, `a`-`f` as UTF-8.
    static let digits: [UInt8] = Array("0123456789abcdef".utf8)

    /// Two lower-case hex digits per byte, most significant first.
    public static func encode(_ bytes: some Sequence<UInt8>) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.underestimatedCount * 2)
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
