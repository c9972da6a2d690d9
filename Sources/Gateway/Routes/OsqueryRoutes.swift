import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import Sinks

/// The osquery TLS remote API: enroll, config, logger, distributed read and write.
///
/// Controllers only decode, call a service and encode; every failure is an `OsqueryError` that
/// renders itself. The node key is taken from `Authorization: NodeKey` when present (osquery 5.23+
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
    let pipeline: LogPipeline

    private static let emptyObject = ByteBuffer(string: "{}")
    private static let noQueries = ByteBuffer(string: "{\"queries\":{}}")

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
        return Self.json(ByteBuffer(string: "{\"node_key\":\(JSONValue.quoted(nodeKey)),\"node_invalid\":false}"))
    }

    func config(_ request: Request, _ context: GatewayRequestContext) async throws -> Response {
        let (node, certificate, _) = try await authenticated(request, context, smallBodies) { try NodeKeyRequest(body: $0) }
        guard let config = agentConfig.config(for: node, certificate: certificate) else {
            throw OsqueryError.noConfig("no osquery config is available yet")
        }
        // Compressed only for agents that asked (osquery 5.21+ --tls_accept_gzip); others cannot read it.
        if request.headers[.acceptEncoding]?.lowercased().contains("gzip") == true {
            return Response(
                status: .ok, headers: [.contentType: "application/json", .contentEncoding: "gzip"],
                body: .init(byteBuffer: config.gzipped))
        }
        return Self.json(config.json)
    }

    func log(_ request: Request, _ context: GatewayRequestContext) async throws -> Response {
        let receivedAt = Date()
        let (node, _, batch) = try await authenticated(request, context, largeBodies) { try LoggerRequest(body: $0) }
        try await append(batch.records(for: node, receivedAt: receivedAt), context)
        return Self.json(Self.emptyObject)
    }

    func distributedRead(_ request: Request, _ context: GatewayRequestContext) async throws -> Response {
        _ = try await authenticated(request, context, smallBodies) { try NodeKeyRequest(body: $0) }
        return Self.json(Self.noQueries)
    }

    func distributedWrite(_ request: Request, _ context: GatewayRequestContext) async throws -> Response {
        let receivedAt = Date()
        let (node, _, results) = try await authenticated(request, context, largeBodies) { try DistributedWriteRequest(body: $0) }
        try await append(results.records(for: node, receivedAt: receivedAt), context)
        return Self.json(Self.emptyObject)
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

    /// Hands records to the pipeline; returns only once they are durable.
    private func append(_ records: [LogRecord], _ context: GatewayRequestContext) async throws {
        do {
            try await pipeline.append(records)
        } catch let error as SinkError {
            context.logger.error("log batch not durable; agent will retry", metadata: ["gw.error": "\(error)", "gw.records": "\(records.count)"])
            throw OsqueryError.spoolFull("logs cannot be stored right now; keep them and retry")
        }
    }

    private func certificate(_ context: GatewayRequestContext) async throws -> PeerCertificate? {
        guard certificatesInUse else { return nil }
        return try await context.peerCertificate()
    }

    static func json(_ body: ByteBuffer) -> Response {
        Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: body))
    }
}

/// A decoded request body that may carry the agent's `node_key`.
protocol NodeKeyed {
    var nodeKey: String? { get }
}

extension NodeKeyRequest: NodeKeyed {}
extension LoggerRequest: NodeKeyed {}
extension DistributedWriteRequest: NodeKeyed {}
