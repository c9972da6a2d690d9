import Crypto
import Foundation
import SwiftASN1
import X509

/// A throwaway certificate authority for trying the gateway and for tests: a CA, a server
/// certificate and one client certificate, all ECDSA P-256 (a full handshake costs about half of an
/// RSA-2048 one). Made in-process with swift-certificates; no `openssl` at run time.
///
/// Never use these in production: the CA key sits next to the certificates.
struct DevelopmentPKI {
    struct Issued {
        var certificatePEM: String
        var privateKeyPEM: String
        var certificate: Certificate
        var key: P256.Signing.PrivateKey
    }

    let ca: Issued

    /// Makes a new CA named `name`.
    init(name: String = "osquery-gateway development CA") throws {
        let key = P256.Signing.PrivateKey()
        let subject = try DistinguishedName {
            OrganizationName("osquery-gateway")
            CommonName(name)
        }
        let now = Date()
        let certificate = try Certificate(
            version: .v3, serialNumber: .init(), publicKey: .init(key.publicKey),
            notValidBefore: now.addingTimeInterval(-3600), notValidAfter: now.addingTimeInterval(10 * 365 * 86400),
            issuer: subject, subject: subject, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
                Critical(KeyUsage(keyCertSign: true, cRLSign: true))
                SubjectKeyIdentifier(hash: .init(key.publicKey))
            },
            issuerPrivateKey: .init(key))
        ca = Issued(certificatePEM: try certificate.serializeAsPEM().pemString, privateKeyPEM: key.pemRepresentation, certificate: certificate, key: key)
    }

    /// A server certificate for `hostnames` (DNS names or IPv4/IPv6 addresses). The first name is the CN,
    /// because osquery also accepts a CN-only match.
    func issueServer(hostnames: [String]) throws -> Issued {
        var names: [GeneralName] = []
        for host in hostnames {
            if let bytes = IPAddressBytes(host) {
                names.append(.ipAddress(ASN1OctetString(contentBytes: ArraySlice(bytes))))
            } else {
                names.append(.dnsName(host))
            }
        }
        return try issue(commonName: hostnames.first ?? "localhost", usage: .serverAuth, names: names)
    }

    /// A client certificate whose CN is `commonName`.
    func issueClient(commonName: String) throws -> Issued {
        try issue(commonName: commonName, usage: .clientAuth, names: [.dnsName(commonName)])
    }

    private func issue(commonName: String, usage: ExtendedKeyUsage.Usage, names: [GeneralName]) throws -> Issued {
        let key = P256.Signing.PrivateKey()
        let now = Date()
        let certificate = try Certificate(
            version: .v3, serialNumber: .init(), publicKey: .init(key.publicKey),
            notValidBefore: now.addingTimeInterval(-3600), notValidAfter: now.addingTimeInterval(2 * 365 * 86400),
            issuer: ca.certificate.subject,
            subject: try DistinguishedName {
                OrganizationName("osquery-gateway")
                CommonName(commonName)
            },
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true, keyAgreement: true))
                try ExtendedKeyUsage([usage])
                SubjectAlternativeNames(names)
                AuthorityKeyIdentifier(keyIdentifier: try ca.certificate.extensions.subjectKeyIdentifier?.keyIdentifier)
            },
            issuerPrivateKey: .init(ca.key))
        return Issued(certificatePEM: try certificate.serializeAsPEM().pemString, privateKeyPEM: key.pemRepresentation, certificate: certificate, key: key)
    }
}

/// The bytes of an IPv4 or IPv6 literal, or nil for a host name.
func IPAddressBytes(_ text: String) -> [UInt8]? {
    var v4 = in_addr()
    if inet_pton(AF_INET, text, &v4) == 1 {
        return withUnsafeBytes(of: &v4) { Array($0) }
    }
    var v6 = in6_addr()
    if inet_pton(AF_INET6, text, &v6) == 1 {
        return withUnsafeBytes(of: &v6) { Array($0) }
    }
    return nil
}
