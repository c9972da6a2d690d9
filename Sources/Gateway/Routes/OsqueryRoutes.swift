import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore

/// The osquery TLS remote API: enroll, config, logger, distributed read and write, carve start and
/// block (served by the gateway's own carve store, or passed through to an upstream backend).
///
/// Controllers only decode (`Osquery/`), call a service and answer (`OsqueryResponse`); every
/// failure is an `OsqueryError` that renders itself, or an `OsqueryBodyError` the error middleware
/// renders. The node key is taken from `Authorization: NodeKey` when present (osquery 5.23+
/// sends it beside the body field, always with the same value), else from the `--tls_node_api`
/// URL (`NodeAPIPath`), else from the body; a body that names `node_key` twice counts the
/// first, as osquery's own JSON reader does.
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
    /// In front of an osquery backend (`upstream`): per-node configs, pass-through and carving.
    var upstream: UpstreamEndpoints? = nil
    /// Live queries: the gateway's own distributed queries (combined with a backend's in upstream mode).
    var campaigns: CampaignService? = nil
    /// File carving into the gateway's own store (without an upstream backend, which gets carves instead).
    var carves: CarveService? = nil

    func register(on router: Router<GatewayRequestContext>) {
        router.post(RouterPath(endpoints.enroll)) { request, context in try await self.enroll(request, context) }
        router.post(RouterPath(endpoints.config)) { request, context in try await self.config(request, context) }
        // `--tls_node_api` agents fetch config with a body-less GET.
        router.get(RouterPath(endpoints.config)) { request, context in try await self.config(request, context) }
        router.post(RouterPath(endpoints.logger)) { request, context in try await self.log(request, context) }
        router.post(RouterPath(endpoints.distributedRead)) { request, context in try await self.distributedRead(request, context) }
        router.post(RouterPath(endpoints.distributedWrite)) { request, context in try await self.distributedWrite(request, context) }
        // Carves go to the backend in front of one, else into the gateway's carve store.
        if upstream != nil || carves != nil {
            router.post(RouterPath(endpoints.carveStart)) { request, context in try await self.carveStart(request, context) }
            router.post(RouterPath(endpoints.carveBlock)) { request, context in try await self.carveBlock(request, context) }
        }
    }

    func enroll(_ request: Request, _ context: GatewayRequestContext) async throws -> Response {
        let body = try await smallBodies.read(request)
        let enroll = try EnrollRequest(body: body, secretField: secretField)
        let origin = try await self.origin(request, context)
        let (nodeKey, _) = try await enrollment.enroll(
            enroll, urlSecret: context.urlSecret, certificate: origin.certificate, body: body, origin: origin)
        return OsqueryResponse.enrolled(nodeKey: nodeKey)
    }

    func config(_ request: Request, _ context: GatewayRequestContext) async throws -> Response {
        let call = try await authenticated(request, context, smallBodies) { try NodeKeyRequest(body: $0) }
        let config: AgentConfigService.Rendered
        if let upstream {
            config = try await upstream.config.config(for: call.node, origin: call.origin)
        } else {
            guard let local = agentConfig.config(for: call.node, certificate: call.origin.certificate) else {
                throw OsqueryError.noConfig("no osquery config is available yet")
            }
            config = local
        }
        // A node-API agent reads the config from a string member (plugins/config/tls_config.cpp),
        // and only such an agent sends a GET.
        if context.isNodeAPI || request.method == .get { return OsqueryResponse.nodeAPIConfig(json: config.json) }
        let gzip = request.headers[.acceptEncoding]?.lowercased().contains("gzip") == true
        return OsqueryResponse.config(json: config.json, gzipped: config.gzipped, acceptsGzip: gzip)
    }

    func log(_ request: Request, _ context: GatewayRequestContext) async throws -> Response {
        try await ingested(request, context, .logger) { try LoggerRequest(body: $0) }
    }

    /// The campaigns' pending queries for the node (none costs no database read); in front of a
    /// backend, its answer with the campaigns' queries added. The backend is asked first, so a
    /// node it refuses is not marked sent. A backend answer osquery would reject whole (an `error`
    /// member, a status that is not 2xx) is replaced by the campaigns' own answer when they have
    /// work, or the campaigns' queries, marked sent, would be lost with it.
    func distributedRead(_ request: Request, _ context: GatewayRequestContext) async throws -> Response {
        let call = try await authenticated(request, context, smallBodies) { try NodeKeyRequest(body: $0) }
        guard let upstream else {
            guard let campaigns else { return OsqueryResponse.noQueries }
            let work = await campaigns.work(for: call.node)
            return work.isEmpty ? OsqueryResponse.noQueries : OsqueryResponse.json(campaigns.readBody(work))
        }
        let backend = try await upstream.passThrough.distributedRead(call.node, body: call.raw, origin: call.origin)
        guard let campaigns else { return OsqueryResponse.json(backend.body) }
        let work = await campaigns.work(for: call.node)
        guard !work.isEmpty else { return OsqueryResponse.json(backend.body) }
        return OsqueryResponse.json(backend.hasError ? campaigns.readBody(work) : campaigns.merged(work, into: backend.body))
    }

    /// Campaign answers stored, the results spooled, and `{}` once both are durable. In front of a
    /// backend, the results of its queries are passed through first and answered with its own body
    /// (spooled either way, so local sinks get them); the gateway's own campaign results
    /// (`Campaign.idPrefix`) never go to the backend.
    ///
    /// The ingest slot (`IngestAdmission`) covers reading, authenticating, decoding and the campaign
    /// store; it is given back before the backend is asked, so a slow backend holds at most the
    /// `upstream.max_concurrent` requests its own cap allows, never the slots logger batches need.
    /// The results are spooled after the backend's answer (it decides whether the upstream sink
    /// sends them later), and the agent hears nothing before they are durable.
    func distributedWrite(_ request: Request, _ context: GatewayRequestContext) async throws -> Response {
        let receivedAt = Date()
        let pending = try await ingest.admitted(.distributedWrite) { () async throws -> PendingWrite? in
            let call = try await authenticated(request, context, largeBodies) { try DistributedWriteRequest(body: $0) }
            var campaignsAnswered: [String: Campaign] = [:]
            if let campaigns {
                do {
                    campaignsAnswered = try await campaigns.record(call.body, from: call.node, receivedAt: receivedAt)
                } catch {
                    context.logger.error("campaign answers not durable; agent will retry", metadata: ["gw.error": "\(error)"])
                    throw OsqueryError.unavailable("query results cannot be stored right now; keep them and retry")
                }
            }
            let results = DistributedResults(write: call.body, campaigns: campaignsAnswered, upstream: upstream != nil)
            let backendResults = call.body.filtered { !$0.id.hasPrefix(Campaign.idPrefix) }
            let backendBody: ByteBuffer?
            if backendResults.results.count == call.body.results.count {
                backendBody = call.raw
            } else {
                backendBody = backendResults.results.isEmpty ? nil : backendResults.body
            }
            guard upstream != nil, let backendBody else {
                try await ingest.append(results, from: call.node, receivedAt: receivedAt, logger: context.logger)
                return nil
            }
            return PendingWrite(node: call.node, origin: call.origin, results: results, backendBody: backendBody)
        }
        guard let pending, let upstream else { return OsqueryResponse.accepted }
        var results = pending.results
        switch try await upstream.passThrough.distributedWrite(pending.node, body: pending.backendBody, origin: pending.origin) {
        case .answered(let answer):
            results.backendHasOthers = true
            try await ingest.append(results, from: pending.node, receivedAt: receivedAt, logger: context.logger)
            return OsqueryResponse.json(answer)
        case .later:
            try await ingest.append(results, from: pending.node, receivedAt: receivedAt, logger: context.logger)
            return OsqueryResponse.accepted
        }
    }

    /// A distributed write read and decoded under the ingest slot, waiting for the backend.
    private struct PendingWrite: Sendable {
        var node: NodeRecord
        var origin: AgentOrigin
        var results: DistributedResults
        /// The body for the backend: the agent's own when every result is for the backend, else
        /// one holding only the backend's results.
        var backendBody: ByteBuffer
    }

    /// Carve start: passed through to the backend in front of one; else a session in the carve
    /// store, answered `{"session_id":"..."}` (any other answer makes osquery give the carve up).
    func carveStart(_ request: Request, _ context: GatewayRequestContext) async throws -> Response {
        if let upstream {
            let call = try await authenticated(request, context, smallBodies) { try NodeKeyRequest(body: $0) }
            return OsqueryResponse.json(try await upstream.passThrough.carve(.carveStart, call.node, body: call.raw, origin: call.origin))
        }
        guard let carves else { throw OsqueryError.notFound("no osquery endpoint at this path") }
        let call = try await authenticated(request, context, smallBodies) { try CarveStartRequest(body: $0) }
        let carve = try await carves.start(call.body, node: call.node)
        return OsqueryResponse.carveStarted(sessionID: carve.sessionID)
    }

    /// Carve block: passed through to the backend in front of one; else stored, and `{}` once it
    /// is durable. Blocks carry no key in the body: with the 5.23 `Authorization: NodeKey` header
    /// or a node-API URL the node is authenticated (and must own the session), else the
    /// `session_id` alone names it.
    func carveBlock(_ request: Request, _ context: GatewayRequestContext) async throws -> Response {
        let origin = try await self.origin(request, context)
        var node: NodeRecord?
        if let key = context.nodeKey(outsideBodyOf: request) {
            node = try await authenticator.authenticate(nodeKey: key, certificate: origin.certificate, origin: origin)
        }
        let body = try await largeBodies.read(request)
        if let upstream {
            return OsqueryResponse.json(try await upstream.passThrough.carve(.carveBlock, node, body: body, origin: origin))
        }
        guard let carves else { throw OsqueryError.notFound("no osquery endpoint at this path") }
        try await carves.block(try CarveBlockRequest(body: body), node: node)
        return OsqueryResponse.accepted
    }

    /// The logger and distributed write endpoints: admit (load shaping, before anything is read),
    /// authenticate, decode, store, and only once the records are durable answer `{}`.
    private func ingested<Body: NodeKeyed & LogBatch>(
        _ request: Request, _ context: GatewayRequestContext, _ kind: IngestAdmission.Kind, decode: (ByteBuffer) throws -> Body
    ) async throws -> Response {
        let receivedAt = Date()
        return try await ingest.admitted(kind) {
            let call = try await authenticated(request, context, largeBodies, decode: decode)
            try await ingest.append(call.body, from: call.node, receivedAt: receivedAt, logger: context.logger)
            return OsqueryResponse.accepted
        }
    }

    /// An authenticated request: its node, where it came from, its decoded body and its bytes.
    private struct Authenticated<Body> {
        var node: NodeRecord
        var origin: AgentOrigin
        var body: Body
        /// The body as read (inflated), for an upstream backend.
        var raw: ByteBuffer
    }

    /// The one authentication step of every node endpoint.
    ///
    /// With `Authorization: NodeKey` (osquery 5.23+) or a node-API URL the node is authenticated
    /// *before* the body is read or inflated, so an unknown key never costs a 256 MiB inflate; the
    /// body's `node_key` is used only when neither has one (node-API bodies carry none).
    private func authenticated<Body: NodeKeyed>(
        _ request: Request, _ context: GatewayRequestContext, _ reader: RequestBodyReader, decode: (ByteBuffer) throws -> Body
    ) async throws -> Authenticated<Body> {
        let origin = try await self.origin(request, context)
        if let key = context.nodeKey(outsideBodyOf: request) {
            let node = try await authenticator.authenticate(nodeKey: key, certificate: origin.certificate, origin: origin)
            let raw = try await reader.read(request)
            return Authenticated(node: node, origin: origin, body: try decode(raw), raw: raw)
        }
        let raw = try await reader.read(request)
        let body = try decode(raw)
        let node = try await authenticator.authenticate(nodeKey: body.nodeKey, certificate: origin.certificate, origin: origin)
        return Authenticated(node: node, origin: origin, body: body, raw: raw)
    }

    /// The connection's verified certificate (when certificates are in use), address and User-Agent.
    private func origin(_ request: Request, _ context: GatewayRequestContext) async throws -> AgentOrigin {
        var certificate: PeerCertificate?
        if certificatesInUse { certificate = try await context.peerCertificate() }
        return AgentOrigin(certificate: certificate, address: await context.agentAddress(), userAgent: request.headers[.userAgent])
    }
}
