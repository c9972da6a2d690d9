import NIOCore
import NIOSSL

/// Makes a server name the sink was told to expect a name the certificate must carry.
///
/// Why on top of NIOSSL's own check: NIOSSL also accepts a certificate whose IP address matches the
/// address it connected to, whatever name was asked for. An operator who sets `server_name` (or a
/// host name in the URL) means that name; a certificate issued for the address alone, or for
/// another name on the same address, is not the server they named.
enum ServerNameCheck {
    /// Checks the peer certificate of `channel`'s finished TLS handshake against `name`.
    /// - Throws: `TCPConnector.Failure` naming the server when the certificate lists names (DNS or
    ///   IP) and none of its DNS names is `name`. A certificate with no alternative names at all was
    ///   already checked by its common name.
    static func verify(_ channel: any Channel, carries name: String, peer: String) async throws {
        let certificate = try await channel.eventLoop.submit {
            try channel.pipeline.syncOperations.handler(type: NIOSSLClientHandler.self).peerCertificate
        }.get()
        guard let certificate, carries(certificate, name) else {
            throw TCPConnector.Failure(description: "the TLS certificate of \(peer) does not carry the server name \(name)")
        }
    }

    static func carries(_ certificate: NIOSSLCertificate, _ name: String) -> Bool {
        var wanted = name.lowercased()
        if wanted.hasSuffix(".") { wanted.removeLast() }
        var anyName = false
        for alternative in certificate._subjectAlternativeNames() {
            anyName = true
            guard alternative.nameType == .dnsName else { continue }
            if matches(String(decoding: Array(alternative.contents), as: UTF8.self).lowercased(), wanted) { return true }
        }
        return !anyName
    }

    /// `pattern` is the name itself, or `*.` and the name without its first label (one label only).
    static func matches(_ pattern: String, _ name: String) -> Bool {
        if pattern == name { return true }
        guard pattern.hasPrefix("*."), let dot = name.firstIndex(of: ".") else { return false }
        return name[name.startIndex..<dot].count > 0 && name[dot...] == pattern.dropFirst()
    }
}
