import Crypto
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

    init(_ certificate: NIOSSLCertificate) throws {
        let der = try certificate.toDERBytes()
        let parsed = try Certificate(derEncoded: der)
        fingerprint = Hex.encode(SHA256.hash(data: der))
        subject = String(describing: parsed.subject)
        commonName = parsed.subject.reversed().lazy.flatMap { $0 }
            .first { $0.type == .RDNAttributeType.commonName }
            .flatMap { String($0.value) }
        var names: [String] = []
        if let sans = try parsed.extensions.subjectAlternativeNames {
            for name in sans {
                if case .dnsName(let dns) = name { names.append(dns) }
            }
        }
        dnsNames = names
    }
}
