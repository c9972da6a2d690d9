public import AsyncHTTPClient
public import NIOCore
public import NIOHTTP1
import NIOSSL

/// One place the gateway calls out to over HTTP: a sink's receiver, a config server, and (later)
/// the backend it fronts. Every outbound client is made here, so they all share the same rules:
/// TLS 1.2 or later, trust pinned to `ca` when one is given (the system store otherwise), an
/// optional client certificate, no redirects (a redirect could send logs or secrets elsewhere),
/// bounded connect and request times, and a bounded connection pool.
///
/// The configuration file reads it in one place too (`HTTPEndpoint+YAML.swift` in the Gateway).
public struct HTTPEndpoint: Sendable {
    /// A certificate chain and its private key, both PEM files.
    public struct ClientCertificate: Sendable, Equatable {
        public var certificate: String
        public var privateKey: String

        public init(certificate: String, privateKey: String) {
            self.certificate = certificate
            self.privateKey = privateKey
        }
    }

    public var url: String
    public var method: HTTPMethod
    /// Sent with every request: fixed headers and the auth header read from an environment variable
    /// or a file when the configuration was read.
    public var headers: [(name: String, value: String)] = []
    /// PEM bundle the server's certificate must chain to; nil: the system's trust store.
    public var ca: String?
    public var clientCertificate: ClientCertificate?
    public var connectTimeout: Duration = .seconds(5)
    /// A whole request, from sending to the last byte of the answer.
    public var requestTimeout: Duration = .seconds(30)
    /// Connections kept per host (a soft limit: more are opened under load, then closed).
    public var poolSize = 8
    /// An unused pooled connection is closed after this long.
    public var poolIdleTimeout: Duration = .seconds(60)

    public init(url: String, method: HTTPMethod = .POST) {
        self.url = url
        self.method = method
    }

    /// A client for this endpoint; shut it down with `shutdown()` when its owner stops.
    /// - Throws: when the CA, certificate or key file cannot be read.
    public func makeClient() throws -> HTTPClient {
        let tls = try OutboundTLS.configuration(ca: ca, clientCertificate: clientCertificate)
        var configuration = HTTPClient.Configuration(tlsConfiguration: tls)
        configuration.redirectConfiguration = .disallow
        configuration.timeout = .init(connect: Self.timeAmount(connectTimeout), read: Self.timeAmount(requestTimeout))
        configuration.connectionPool = .init(
            idleTimeout: Self.timeAmount(poolIdleTimeout), concurrentHTTP1ConnectionsPerHostSoftLimit: poolSize)
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    /// A request to `url` (or `target`, a URL on the same server) with the method and headers set.
    public func request(to target: String? = nil) -> HTTPClientRequest {
        var request = HTTPClientRequest(url: target ?? url)
        request.method = method
        for header in headers { request.headers.add(name: header.name, value: header.value) }
        return request
    }

    /// `requestTimeout` as NIO counts time, for `HTTPClient.execute(_:timeout:)`.
    public var requestTimeAmount: TimeAmount { Self.timeAmount(requestTimeout) }

    static func timeAmount(_ duration: Duration) -> TimeAmount {
        let (seconds, attoseconds) = duration.components
        return .nanoseconds(max(1_000_000, seconds * 1_000_000_000 + attoseconds / 1_000_000_000))
    }
}
