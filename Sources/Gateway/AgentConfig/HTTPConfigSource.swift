import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import NIOSSL

/// An osquery config fetched over HTTP(S): a vendor endpoint or another server's config API.
///
/// The response body must be an osquery config object (2xx); an `error` or `node_invalid` member,
/// another status, a timeout or invalid JSON is a failed refresh, and the last good content stays.
struct HTTPConfigSource: ConfigSource {
    let name: String
    let url: String
    let method: HTTPMethod
    let headers: [(String, String)]
    let body: String?
    let timeout: Duration
    let refreshInterval: Duration
    let client: HTTPClient

    /// Makes the source and its HTTP client (pinned to `ca` when given, presenting `clientCertificate`).
    init(
        name: String, url: String, method: HTTPMethod = .GET, headers: [(String, String)] = [], body: String? = nil,
        ca: String? = nil, clientCertificate: (certificate: String, key: String)? = nil,
        timeout: Duration = .seconds(10), refreshInterval: Duration = .seconds(60)
    ) throws {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.minimumTLSVersion = .tlsv12
        if let ca { tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(ca)) }
        if let clientCertificate {
            tls.certificateChain = try NIOSSLCertificate.fromPEMFile(clientCertificate.certificate).map { .certificate($0) }
            tls.privateKey = .privateKey(try NIOSSLPrivateKey(file: clientCertificate.key, format: .pem))
        }
        var configuration = HTTPClient.Configuration(tlsConfiguration: tls)
        configuration.redirectConfiguration = .disallow
                self.client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        self.name = name
        self.url = url
        self.method = method
        self.headers = headers
        self.body = body
        self.timeout = timeout
        self.refreshInterval = refreshInterval
    }

    func load() async throws -> JSONObject {
        var request = HTTPClientRequest(url: url)
        request.method = method
        request.headers.add(name: "Accept", value: "application/json")
        for (header, value) in headers { request.headers.add(name: header, value: value) }
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(string: body))
        }
        let seconds = timeout.components.seconds
        let response = try await client.execute(request, timeout: .seconds(max(seconds, 1)))
        let bytes = try await response.body.collect(upTo: 16 << 20)
        guard (200..<300).contains(response.status.code) else {
            throw AgentConfigError("\(url) answered \(response.status.code)")
        }
        let config = try OsqueryConfigFile.parse(Data(bytes.readableBytesView), path: url)
        if config["error"] != nil || config["node_invalid"] == .bool(true) {
            throw AgentConfigError("\(url) answered with an error body")
        }
        return config
    }

    func shutdown() async {
        try? await client.shutdown()
    }
}
