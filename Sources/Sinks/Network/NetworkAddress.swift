#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// A `scheme://[user[:password]@]host[:port]` address of a server a sink talks to over plain TCP
/// or TLS (a syslog receiver, a NATS server). IPv6 hosts go in brackets: `tcp://[::1]:6514`.
///
/// `description` leaves the user and password out, so an address can go into logs and delivery
/// reasons.
public struct NetworkAddress: Sendable, Equatable, CustomStringConvertible {
    public var scheme: String
    /// A name or an IP address, without brackets.
    public var host: String
    public var port: Int
    /// Percent-decoded user info, if the address has any.
    public var user: String?
    public var password: String?

    public init(scheme: String, host: String, port: Int, user: String? = nil, password: String? = nil) {
        self.scheme = scheme
        self.host = host
        self.port = port
        self.user = user
        self.password = password
    }

    /// Parses `text`; nil when the scheme is not one of `schemes`, the host is empty, or the port is
    /// missing (and there is no `defaultPort`) or out of range. Paths and queries are not allowed.
    public init?(parsing text: String, schemes: [String], defaultPort: Int? = nil) {
        guard let separator = text.range(of: "://") else { return nil }
        let scheme = text[..<separator.lowerBound].lowercased()
        guard schemes.contains(scheme) else { return nil }
        var rest = Substring(text[separator.upperBound...])
        if rest.hasSuffix("/") { rest = rest.dropLast() }
        guard !rest.contains("/"), !rest.contains("?"), !rest.contains("#") else { return nil }
        var user: String?
        var password: String?
        if let at = rest.lastIndex(of: "@") {
            let info = rest[..<at]
            rest = rest[rest.index(after: at)...]
            if let colon = info.firstIndex(of: ":") {
                user = String(info[..<colon]).removingPercentEncoding
                password = String(info[info.index(after: colon)...]).removingPercentEncoding
            } else {
                user = String(info).removingPercentEncoding
            }
            guard user != nil else { return nil }
        }
        var host: Substring
        var portText: Substring?
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]") else { return nil }
            host = rest[rest.index(after: rest.startIndex)..<close]
            let after = rest[rest.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { return nil }
                portText = after.dropFirst()
            }
        } else if let colon = rest.firstIndex(of: ":") {
            host = rest[..<colon]
            portText = rest[rest.index(after: colon)...]
        } else {
            host = rest
        }
        guard !host.isEmpty, !host.contains(where: { $0 == " " || $0 == "@" }) else { return nil }
        let port: Int
        if let portText {
            guard let number = Int(portText), (1...65_535).contains(number) else { return nil }
            port = number
        } else {
            guard let defaultPort else { return nil }
            port = defaultPort
        }
        self.init(scheme: scheme, host: String(host), port: port, user: user, password: password)
    }

    /// True when `host` is an IP literal: TLS then sends no server name (SNI must not carry an
    /// address) and checks the certificate against the address instead.
    public var hostIsIPAddress: Bool {
        var v4 = in_addr()
        var v6 = in6_addr()
        return host.withCString { inet_pton(AF_INET, $0, &v4) == 1 || inet_pton(AF_INET6, $0, &v6) == 1 }
    }

    public var description: String {
        let shown = host.contains(":") ? "[\(host)]" : host
        return "\(scheme)://\(shown):\(port)"
    }
}
