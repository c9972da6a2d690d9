import Foundation
import NIOSSL
import SwiftASN1
import X509

/// The names a server certificate is valid for (its subject alternative names), to tell an operator
/// before agents do that `--tls_hostname` will fail verification.
struct CertificateNames {
    var dnsNames: [String] = []
    var addresses: [String] = []

    var isEmpty: Bool { dnsNames.isEmpty && addresses.isEmpty }

    /// The names of the first certificate in a PEM file; empty when it cannot be read.
    init(file: String) {
        guard let first = try? NIOSSLCertificate.fromPEMFile(file).first,
            let certificate = try? Certificate(derEncoded: try first.toDERBytes()),
            let names = try? certificate.extensions.subjectAlternativeNames
        else { return }
        for name in names {
            switch name {
            case .dnsName(let dns): dnsNames.append(dns.lowercased())
            case .ipAddress(let octets): if let text = Self.address(Array(octets.bytes)) { addresses.append(text) }
            default: break
            }
        }
    }

    /// Whether a client verifying `host` against this certificate succeeds (RFC 6125: exact names,
    /// a wildcard for one leftmost label, IP addresses only against IP entries).
    func covers(_ host: String) -> Bool {
        let host = host.lowercased()
        if let normal = Self.normalAddress(host) { return addresses.contains(normal) }
        return dnsNames.contains { name in
            if name == host { return true }
            guard name.hasPrefix("*."), let dot = host.firstIndex(of: ".") else { return false }
            return host[dot...] == name.dropFirst()
        }
    }

    /// An IPv4 or IPv6 address as `inet_ntop` prints it; nil for another length.
    static func address(_ bytes: [UInt8]) -> String? {
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        switch bytes.count {
        case 4: guard inet_ntop(AF_INET, bytes, &text, socklen_t(text.count)) != nil else { return nil }
        case 16: guard inet_ntop(AF_INET6, bytes, &text, socklen_t(text.count)) != nil else { return nil }
        default: return nil
        }
        return String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// `host` as `address` would print it, when it is an IP address.
    private static func normalAddress(_ host: String) -> String? {
        var v4 = in_addr()
        if inet_pton(AF_INET, host, &v4) == 1 { return withUnsafeBytes(of: &v4) { address(Array($0)) } }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, host, &v6) == 1 { return withUnsafeBytes(of: &v6) { address(Array($0)) } }
        return nil
    }
}
