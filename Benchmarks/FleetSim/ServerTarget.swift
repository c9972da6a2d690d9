import Foundation
import NIOCore
import NIOHTTP1
import NIOSSL

/// Where every connection goes and how it is secured, built once for the whole run: one resolved
/// address (no DNS per request, so the resolver is not measured) and one shared `NIOSSLContext`.
///
/// osquery gives each connection a fresh OpenSSL context and no saved session (docs/protocol.md#connections),
/// so every request costs a full handshake; a NIOSSL client context never offers a saved session either,
/// which keeps that true while sharing the parsed CA and client certificate across connections.
struct ServerTarget: Sendable {
    let address: SocketAddress
    /// SNI and the name the certificate is checked against; nil for an IP address, which NIOSSL then
    /// checks against the certificate's IP SANs (SNI cannot carry an address).
    let serverHostname: String?
    let hostHeader: String
    /// The URL's path, put in front of every endpoint path.
    let basePath: String
    let sslContext: NIOSSLContext

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    /// - Parameters:
    ///   - tlsHostname: osquery's `--tls_hostname` when it differs from the address connected to.
    ///   - tls12Only: cap at TLS 1.2 (osquery offers 1.2 and 1.3, and gets 1.3 from the gateway).
    static func make(url text: String, tlsHostname: String?, ca: String?, clientCertificate: String?,
                     clientKey: String?, tls12Only: Bool) throws -> ServerTarget {
        guard let url = URL(string: text), url.scheme?.lowercased() == "https", let rawHost = url.host, !rawHost.isEmpty else {
            throw Failure(description: "--url must look like https://host:port")
        }
        // Linux Foundation may keep the brackets of an IPv6 literal.
        let host = rawHost.hasPrefix("[") ? String(rawHost.dropFirst().dropLast()) : rawHost
        let port = url.port ?? 443
        let address = try SocketAddress.makeAddressResolvingHost(host, port: port)
        let isAddress = (try? SocketAddress(ipAddress: host, port: port)) != nil

        var tls = TLSConfiguration.makeClientConfiguration()
        tls.minimumTLSVersion = .tlsv12
        if tls12Only { tls.maximumTLSVersion = .tlsv12 }
        if let ca { tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(ca)) }
        switch (clientCertificate, clientKey) {
        case (let certificate?, let key?):
            tls.certificateChain = try NIOSSLCertificate.fromPEMFile(certificate).map { .certificate($0) }
            tls.privateKey = .privateKey(try NIOSSLPrivateKey(file: key, format: .pem))
        case (nil, nil):
            break
        default:
            // osquery sends a client certificate only when both flags are set.
            throw Failure(description: "--client-cert and --client-key go together")
        }
        let hostname = tlsHostname ?? (isAddress ? nil : host)
        let bracketed = host.contains(":") ? "[\(host)]" : host
        var path = url.path
        while path.hasSuffix("/") { path.removeLast() }
        return ServerTarget(
            address: address, serverHostname: hostname,
            hostHeader: port == 443 ? bracketed : "\(bracketed):\(port)",
            basePath: path, sslContext: try NIOSSLContext(configuration: tls))
    }

    /// The request head osqueryd 5.23 sends (docs/protocol.md#connections, #node-keys): HTTP/1.1, a
    /// Content-Length body, JSON content type, `User-Agent: osquery/5.23.1`, and `Authorization: NodeKey`
    /// whenever it holds a key (never on enroll, where the caller passes nil).
    func requestHead(path: String, bodyLength: Int, nodeKey: String?) -> HTTPRequestHead {
        var headers = HTTPHeaders()
        headers.add(name: "Host", value: hostHeader)
        headers.add(name: "User-Agent", value: "osquery/5.23.1")
        headers.add(name: "Content-Type", value: "application/json")
        headers.add(name: "Accept", value: "application/json")
        headers.add(name: "Content-Length", value: String(bodyLength))
        if let nodeKey, !nodeKey.isEmpty {
            headers.add(name: "Authorization", value: "NodeKey \(nodeKey)")
        }
        return HTTPRequestHead(version: .http1_1, method: .POST, uri: basePath + path, headers: headers)
    }

    /// A POST ready to send on a new connection.
    func request(path: String, body: ByteBuffer, nodeKey: String?) -> PreparedRequest {
        PreparedRequest(head: requestHead(path: path, bodyLength: body.readableBytes, nodeKey: nodeKey), body: body)
    }
}

/// One request's head and body; sent unchanged again when osquery's reconnect-once retry applies.
struct PreparedRequest: Sendable {
    var head: HTTPRequestHead
    var body: ByteBuffer
}

extension Channel {
    /// Closes the TCP connection without a TLS close_notify, as osquery does when it drops its previous
    /// socket: the close event starts at the TLS handler's context, so it goes straight to the socket
    /// instead of through the TLS shutdown (which would also wait for the server's close_notify).
    /// Must be called on the channel's event loop.
    func closeWithoutTLSShutdown() {
        if let context = try? pipeline.syncOperations.context(handlerType: NIOSSLClientHandler.self) {
            context.close(promise: nil)
        } else {
            close(promise: nil)
        }
    }
}
