import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import Support

/// One AWS service's client: signs every request with Signature V4 and sends it through the
/// project's outbound HTTP client (`HTTPEndpoint.makeClient()`).
///
/// Requests name a path and query not yet percent-encoded; the client encodes them once, the same
/// way for the URL it sends and the canonical request it signs, so the two cannot disagree.
final class AWSClient: Sendable {
    /// A whole answer: status, headers and the body (AWS answers are small, S3 objects aside).
    struct Response: Sendable {
        var status: Int
        var headers: HTTPHeaders
        var body: ByteBuffer

        var succeeded: Bool { (200..<300).contains(status) }
    }

    let signer: AWSSigner
    /// `https://host[:port]`.
    let origin: String
    /// The `Host` header sent and signed: the port only when it is not the scheme's default.
    let host: String
    /// A path the endpoint URL carries, put before every request's path; usually empty.
    let basePath: String
    private let credentials: AWSCredentialProvider
    private let http: HTTPClient
    private let timeout: TimeAmount

    /// - Parameters:
    ///   - service: the signing name (`s3`, `kinesis`, `firehose`).
    ///   - defaultHost: AWS's host for the service, used when the connection names no endpoint.
    /// - Throws: `SinkError.io` when the endpoint is not an http(s) URL or the CA cannot be read.
    init(connection: AWSConnection, service: String, defaultHost: String) throws {
        let url = connection.endpoint ?? "https://\(defaultHost)"
        guard let components = URLComponents(string: url), let scheme = components.scheme?.lowercased(),
            scheme == "http" || scheme == "https", var host = components.host, !host.isEmpty
        else {
            throw SinkError.io("\(url) is not an http:// or https:// URL")
        }
        if host.contains(":") && !host.hasPrefix("[") { host = "[\(host)]" }
        if let port = components.port, port != (scheme == "https" ? 443 : 80) { host += ":\(port)" }
        self.host = host
        origin = "\(scheme)://\(host)"
        var path = components.percentEncodedPath
        while path.hasSuffix("/") { path.removeLast() }
        basePath = path.removingPercentEncoding ?? path
        signer = AWSSigner(region: connection.region, service: service)
        credentials = AWSCredentialProvider(connection.credentials)
        let endpoint = connection.httpEndpoint(defaultURL: url)
        http = try endpoint.makeClient()
        timeout = endpoint.requestTimeAmount
    }

    /// Sends one signed request and collects the answer, whatever its status.
    /// - Parameters:
    ///   - path: from `/`, not percent-encoded (an S3 key may hold any character).
    ///   - query: not percent-encoded; a flag such as `uploads` has an empty value.
    ///   - contentHashHeader: send `X-Amz-Content-Sha256` (S3 requires it on every request).
    /// - Throws: connection errors and timeouts, and `SinkError.io` when the credentials file
    ///   cannot be read; all of them temporary for a sink.
    func send(_ method: HTTPMethod, path: String, query: [(name: String, value: String)] = [],
              headers: [(name: String, value: String)] = [], body: ByteBuffer? = nil, contentHashHeader: Bool = false,
              maxResponseBytes: Int = 64 << 20) async throws -> Response {
        let credentials = try self.credentials.current()
        let payloadHash = body.map { $0.withUnsafeReadableBytes { AWSSigner.sha256($0) } } ?? AWSSigner.emptyPayloadHash
        let fullPath = basePath + path
        var signing = AWSSigner.Request(method: method.rawValue, path: fullPath, query: query, headers: headers, payloadHash: payloadHash)
        signing.headers.insert((name: "Host", value: host), at: 0)
        let target = AWSSigner.encode(fullPath, keepingSlashes: true) + (query.isEmpty ? "" : "?" + AWSSigner.canonicalQuery(query))
        var request = HTTPClientRequest(url: origin + target)
        request.method = method
        for header in signer.sign(signing, credentials: credentials, date: Date(), contentHashHeader: contentHashHeader) {
            request.headers.add(name: header.name, value: header.value)
        }
        if let body { request.body = .bytes(body) }
        let response = try await http.execute(request, timeout: timeout)
        let collected = try await response.body.collect(upTo: maxResponseBytes)
        return Response(status: Int(response.status.code), headers: response.headers, body: collected)
    }

    /// A JSON-protocol call (Kinesis, Firehose): `POST /` with `X-Amz-Target: <target>`.
    func call(target: String, json: ByteBuffer) async throws -> Response {
        try await send(.POST, path: "/", headers: [
            (name: "Content-Type", value: "application/x-amz-json-1.1"),
            (name: "X-Amz-Target", value: target),
        ], body: json)
    }

    func shutdown() async {
        try? await http.shutdown()
    }
}
