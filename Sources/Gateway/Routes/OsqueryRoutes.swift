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
/// sends it beside the body field, always with the same value), else from the body.
struct OsqueryRoutes: Sendable {
    let endpoints: GatewayConfiguration.Endpoints
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
        let body = try await smallBodies.read(request)
        let bodyKey = try NodeKeyRequest(body: body).nodeKey
        let nodeKey = request.headers.nodeKey ?? bodyKey
        let certificate = try await certificate(context)
        let node = try await authenticator.authenticate(nodeKey: nodeKey, certificate: certificate)
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
        let body = try await largeBodies.read(request)
        let batch = try LoggerRequest(body: body)
        let node = try await authenticator.authenticate(nodeKey: request.headers.nodeKey ?? batch.nodeKey, certificate: try await certificate(context))
        try await append(batch.records(for: node, receivedAt: receivedAt), context)
        return Self.json(Self.emptyObject)
    }

    func distributedRead(_ request: Request, _ context: GatewayRequestContext) async throws -> Response {
        let body = try await smallBodies.read(request)
        let bodyKey = try NodeKeyRequest(body: body).nodeKey
        let nodeKey = request.headers.nodeKey ?? bodyKey
        _ = try await authenticator.authenticate(nodeKey: nodeKey, certificate: try await certificate(context))
        return Self.json(Self.noQueries)
    }

    func distributedWrite(_ request: Request, _ context: GatewayRequestContext) async throws -> Response {
        let receivedAt = Date()
        let body = try await largeBodies.read(request)
        let results = try DistributedWriteRequest(body: body)
        let node = try await authenticator.authenticate(nodeKey: request.headers.nodeKey ?? results.nodeKey, certificate: try await certificate(context))
        try await append(results.records(for: node, receivedAt: receivedAt), context)
        return Self.json(Self.emptyObject)
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
