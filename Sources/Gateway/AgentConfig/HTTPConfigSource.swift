import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import Support

/// An osquery config fetched over HTTP(S): a vendor endpoint or another server's config API.
///
/// The response body must be an osquery config object (2xx); an `error` or `node_invalid` member,
/// another status, a timeout or invalid JSON is a failed refresh, and the last good content stays.
struct HTTPConfigSource: ConfigSource {
    struct Configuration: Sendable {
        /// GET by default; the request timeout is the source's `timeout`.
        var endpoint: HTTPEndpoint
        /// Sent as JSON with a POST.
        var body: String?

        init(url: String) {
            endpoint = HTTPEndpoint(url: url, method: .GET)
            endpoint.requestTimeout = .seconds(10)
        }
    }

    let name: String
    let configuration: Configuration
    let refreshInterval: Duration
    let client: HTTPClient

    /// Makes the source and its HTTP client.
    init(name: String, configuration: Configuration, refreshInterval: Duration = .seconds(60)) throws {
        self.name = name
        self.configuration = configuration
        self.refreshInterval = refreshInterval
        client = try configuration.endpoint.makeClient()
    }

    func load() async throws -> JSONObject {
        let url = configuration.endpoint.url
        var request = configuration.endpoint.request()
        request.headers.add(name: "Accept", value: "application/json")
        if let body = configuration.body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(string: body))
        }
        let response = try await client.execute(request, timeout: configuration.endpoint.requestTimeAmount)
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

extension HTTPConfigSource.Configuration {
    /// An `http` source: the outbound-HTTP endpoint keys with `method` (GET or POST) and `body`.
    init?(reading section: MappingReader, timeout: Duration) {
        guard let endpoint = HTTPEndpoint(reading: section, method: .GET, methods: [.GET, .POST], timeout: timeout) else { return nil }
        self.init(url: endpoint.url)
        self.endpoint = endpoint
        body = section.string("body")
    }
}
