import NIOCore

/// The PROXY protocol header a TCP balancer (HAProxy `send-proxy` / `send-proxy-v2`, cloud load
/// balancers' "proxy protocol" option) puts before the client's bytes, naming the client's address
/// (haproxy.org/download/2.6/doc/proxy-protocol.txt).
///
/// Both forms are read: v1, one text line (`PROXY TCP4 203.0.113.7 10.0.0.5 51234 8443\r\n`, at most
/// 107 bytes), and v2, a 12-byte signature, version and command, family, a length and the
/// addresses, then TLVs, which are skipped. `LOCAL` (v2) and `UNKNOWN` (v1), which a balancer sends
/// for its own connections such as health checks, and families other than IPv4 and IPv6 name no
/// source: the connection's peer is then the client.
enum ProxyHeader: Equatable {
    /// Not all of the header has arrived yet.
    case incomplete
    /// Not a PROXY protocol header, or a broken one.
    case invalid(String)
    /// The header, `length` bytes long; `source` is the client's address, if it names one.
    case complete(source: SocketAddress?, length: Int)

    static let v1Prefix = Array("PROXY ".utf8)
    static let v1MaxLength = 107
    static let v2Signature: [UInt8] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A]
    /// 16 fixed bytes, then addresses and TLVs: HAProxy's own limit for what it sends is far below.
    static let v2MaxLength = 16 + 1_024

    /// What the first bytes of a connection hold.
    static func parse(_ bytes: [UInt8]) -> ProxyHeader {
        if bytes.starts(with: v2Signature) { return parseV2(bytes) }
        if bytes.starts(with: v1Prefix) { return parseV1(bytes) }
        if v2Signature.starts(with: bytes) || v1Prefix.starts(with: bytes) { return .incomplete }
        return .invalid("the connection does not start with a PROXY protocol header")
    }

    private static func parseV1(_ bytes: [UInt8]) -> ProxyHeader {
        var end: Int?
        for index in 0..<min(bytes.count, v1MaxLength) - 1 where bytes[index] == 0x0D && bytes[index + 1] == 0x0A {
            end = index
            break
        }
        guard let end else {
            return bytes.count >= v1MaxLength ? .invalid("the v1 header is longer than 107 bytes") : .incomplete
        }
        guard bytes[..<end].allSatisfy({ $0 >= 0x20 && $0 < 0x7F }) else { return .invalid("the v1 header is not ASCII text") }
        let fields = String(decoding: bytes[..<end], as: UTF8.self).split(separator: " ", omittingEmptySubsequences: false)
        let length = end + 2
        guard fields.count >= 2 else { return .invalid("the v1 header names no protocol") }
        switch fields[1] {
        case "UNKNOWN":
            return .complete(source: nil, length: length)
        case "TCP4", "TCP6":
            guard fields.count == 6, let port = Int(fields[4]), (0...65_535).contains(port),
                  let address = try? SocketAddress(ipAddress: String(fields[2]), port: port)
            else { return .invalid("the v1 header's addresses do not read: \(fields.dropFirst().joined(separator: " "))") }
            switch (fields[1], address) {
            case ("TCP4", .v4), ("TCP6", .v6): return .complete(source: address, length: length)
            default: return .invalid("the v1 header's source address is not \(fields[1])")
            }
        default:
            return .invalid("the v1 header's protocol is \(fields[1]), not TCP4, TCP6 or UNKNOWN")
        }
    }

    private static func parseV2(_ bytes: [UInt8]) -> ProxyHeader {
        guard bytes.count >= 16 else { return .incomplete }
        let version = bytes[12] >> 4, command = bytes[12] & 0x0F
        guard version == 2 else { return .invalid("the v2 header's version is \(version)") }
        guard command <= 1 else { return .invalid("the v2 header's command is \(command), not LOCAL or PROXY") }
        let addressLength = Int(bytes[14]) << 8 | Int(bytes[15])
        let length = 16 + addressLength
        guard length <= v2MaxLength else { return .invalid("the v2 header is \(length) bytes, more than \(v2MaxLength)") }
        guard bytes.count >= length else { return .incomplete }
        // LOCAL: the balancer's own connection (a health check); the peer is the client.
        guard command == 1 else { return .complete(source: nil, length: length) }
        let family = bytes[13] >> 4
        let size: Int
        switch family {
        case 1: size = 4  // AF_INET: source, destination, source port, destination port
        case 2: size = 16  // AF_INET6
        default: return .complete(source: nil, length: length)  // AF_UNSPEC, AF_UNIX: no IP address
        }
        guard addressLength >= 2 * size + 4 else { return .invalid("the v2 header's addresses are cut short") }
        let port = Int(bytes[16 + 2 * size]) << 8 | Int(bytes[16 + 2 * size + 1])
        guard let address = try? SocketAddress(packedIPAddress: ByteBuffer(bytes: bytes[16..<16 + size]), port: port) else {
            return .invalid("the v2 header's source address does not read")
        }
        return .complete(source: address, length: length)
    }
}
