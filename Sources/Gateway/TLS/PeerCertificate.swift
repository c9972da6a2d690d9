import Crypto
import NIOCore
import NIOSSL
import Support
import SwiftASN1
import X509

/// The verified client certificate of a connection, reduced to what authentication and logs need.
struct PeerCertificate: Sendable, Equatable {
    /// Lower-case hex SHA-256 of the DER certificate; nodes are bound to this.
    var fingerprint: String
    /// The subject as RFC 4514 text.
    var subject: String
    var commonName: String?
    var dnsNames: [String]
    /// The serial number as lower-case hex without leading zero bytes (`"0a3f"`), the one spelling
    /// forwarded to an upstream backend: proxies disagree (decimal from one, hex from another).
    var serial: String
    /// Every subject alternative name as `DNS:name`, `IP:address`, `email:address` or `URI:uri`.
    var subjectAlternativeNames: [String]

    init(_ certificate: NIOSSLCertificate) throws {
        let der = try certificate.toDERBytes()
        let parsed = try Certificate(derEncoded: der)
        fingerprint = Hex.encode(SHA256.hash(data: der))
        subject = String(describing: parsed.subject)
        commonName = parsed.subject.reversed().lazy.flatMap { $0 }
            .first { $0.type == .RDNAttributeType.commonName }
            .flatMap { String($0.value) }
        var names: [String] = []
        var alternatives: [String] = []
        if let sans = try parsed.extensions.subjectAlternativeNames {
            for name in sans {
                switch name {
                case .dnsName(let dns):
                    names.append(dns)
                    alternatives.append("DNS:" + dns)
                case .ipAddress(let octets):
                    if let text = CertificateNames.address(Array(octets.bytes)) { alternatives.append("IP:" + text) }
                case .rfc822Name(let email): alternatives.append("email:" + email)
                case .uniformResourceIdentifier(let uri): alternatives.append("URI:" + uri)
                default: break
                }
            }
        }
        dnsNames = names
        subjectAlternativeNames = alternatives
        let serialBytes = Array(parsed.serialNumber.bytes.drop { $0 == 0 })
        serial = serialBytes.isEmpty ? "00" : Hex.encode(serialBytes)
    }
}

extension PeerCertificate {
    /// The names certificate globs are matched against, in this order: the subject, the common
    /// name, the DNS names (config targeting, campaign targeting, `admin.tls.client_names`).
    var names: [String] {
        var names = [subject]
        if let commonName { names.append(commonName) }
        return names + dnsNames
    }
}

extension Channel {
    /// The verified client certificate of this TLS connection, if one was presented.
    ///
    /// Costs one hop to the connection's event loop; only for channels with an `NIOSSLHandler`.
    func verifiedPeerCertificate() async throws -> PeerCertificate? {
        guard let certificate = try await nioSSL_peerCertificate().get() else { return nil }
        return try PeerCertificate(certificate)
    }
}
