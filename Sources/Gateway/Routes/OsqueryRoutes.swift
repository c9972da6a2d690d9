import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore

/// The osquery TLS remote API: enroll, config, logger, distributed read and write.
///
/// Controllers only decode (`Osquery/`), call a service and answer (`OsqueryResponse`); every
/// failure is an `OsqueryError` that renders itself, or an `OsqueryBodyError` the error middleware
/// renders. The node key is taken from `Authorization: NodeKey` when present (osquery 5.23+
/// sends it beside the body field, always with the same value), else from the body; a body that
/// names `node_key` twice counts the first, as osquery's own JSON reader does.
struct OsqueryRoutes: Sendable {
    let endpoints: OsqueryEndpoints
    /// For enroll, config and distributed read: small bodies.
    let smallBodies: RequestBodyReader
    /// For logger and distributed write.
    let largeBodies: RequestBodyReader
    let secretField: String
    /// Whether connections can carry client certificates (reading one costs an event-loop hop).
    let certificatesInUse: Bool
    let enrollment: EnrollmentService
    let authenticator: NodeAuthenticator
    let agentConfig: AgentConfigService
    /// Where logger batches and distributed results go.
    let ingest: Ingest

    func register(on router: Router<GatewayRequestContext>) {
        router.post(RouterPath(endpoints.enroll)) { request, context in try await self.enroll(request, context) }
        router.post(RouterPath(endpoints.config)) { request, context in try await self.config(request, context) }
        router.post(RouterPath(endpoints.logger)) { request, context in try await self.log(request, context) }
        router.post(RouterPath(endpoints.distributedRead)) { request, context in try await self.distributedRead(request, context) }
        router.post(RouterPath(endpoints.distributedWrite)) { request, context in try await self.distributedWrite(request, context) }
    }

    func enroll(_ request: Request, _ context: GatewayRequestContext) async throws -> Response {
        let body = try await smallBodies.read(request)
        let enroll = try EnrollRequest(body: body, secretField: secretField)
        let certificate = try await certificate(context)
        let (nodeKey, _) = try await enrollment.enroll(enroll, urlSecret: context.urlSecret, certificate: certificate)
        return OsqueryResponse.enrolled(nodeKey: nodeKey)
    }

    func config(_ request: Request, _ context: GatewayRequestContext) async throws -> Response {
        let (node, certificate, _) = try await authenticated(request, context, smallBodies) { try NodeKeyRequest(body: $0) }
        guard let config = agentConfig.config(for: node, certificate: certificate) else {
            throw OsqueryError.noConfig("no osquery config is available yet")
        }
        let gzip = request.headers[.acceptEncoding]?.lowercased().contains("gzip") == true
        return OsqueryResponse.config(json: config.json, gzipped: config.gzipped, acceptsGzip: gzip)
    }

    func log(_ request: Request, _ context: GatewayRequestContext) async throws -> Response {
        try await ingested(request, context, .logger) { try LoggerRequest(body: $0) }
    }

    func distributedRead(_ request: Request, _ context: GatewayRequestContext) async throws -> Response {
        _ = try await authenticated(request, context, smallBodies) { try NodeKeyRequest(body: $0) }
        return OsqueryResponse.noQueries
    }

    func distributedWrite(_ request: Request, _ context: GatewayRequestContext) async throws -> Response {
        try await ingested(request, context, .distributedWrite) { try DistributedWriteRequest(body: $0) }
    }

    /// The logger and distributed write endpoints: admit (load shaping, before anything is read),
    /// authenticate, decode, store, and only once the records are durable answer `{}`.
    private func ingested<Body: NodeKeyed & LogBatch>(
        _ request: Request, _ context: GatewayRequestContext, _ kind: IngestAdmission.Kind, decode: (ByteBuffer) throws -> Body
    ) async throws -> Response {
        let receivedAt = Date()
        return try await ingest.admitted(kind) {
            let (node, _, batch) = try await authenticated(request, context, largeBodies, decode: decode)
            try await ingest.append(batch, from: node, receivedAt: receivedAt, logger: context.logger)
            return OsqueryResponse.accepted
        }
    }

    /// The one authentication step of every node endpoint.
    ///
    /// With `Authorization: NodeKey` (osquery 5.23+) the node is authenticated from the header
    /// *before* the body is read or inflated, so an unknown key never costs a 256 MiB inflate; the
    /// body's `node_key` is used only when there is no header.
    private func authenticated<Body: NodeKeyed>(
        _ request: Request, _ context: GatewayRequestContext, _ reader: RequestBodyReader, decode: (ByteBuffer) throws -> Body
    ) async throws -> (node: NodeRecord, certificate: PeerCertificate?, body: Body) {
        let certificate = try await certificate(context)
        if let headerKey = request.headers.nodeKey {
            let node = try await authenticator.authenticate(nodeKey: headerKey, certificate: certificate)
            return (node, certificate, try decode(try await reader.read(request)))
        }
        let body = try decode(try await reader.read(request))
        let node = try await authenticator.authenticate(nodeKey: body.nodeKey, certificate: certificate)
        return (node, certificate, body)
    }

    private func certificate(_ context: GatewayRequestContext) async throws -> PeerCertificate? {
        guard certificatesInUse else { return nil }
        return try await context.peerCertificate()
    }
}
