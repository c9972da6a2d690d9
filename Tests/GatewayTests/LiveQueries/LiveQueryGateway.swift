import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
@testable import Gateway

/// A test gateway with the admin API on (a random loopback port, a token file), and a client for it.
final class LiveQueryGateway: @unchecked Sendable {
    let gateway: TestGateway
    let adminPort = freeLoopbackPort()
    let token = "test-admin-token-\(UUID().uuidString)"
    /// A new connection per call: a pooled one the admin listener closed while idle (a slow test on
    /// a loaded machine) would fail the next call with `remoteConnectionClosed`.
    let http: HTTPClient = {
        var configuration = HTTPClient.Configuration()
        configuration.maximumUsesPerConnection = 1
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }()

    init() throws {
        gateway = try TestGateway()
        let tokenPath = gateway.directory + "/admin_token.txt"
        try Data((token + "\n").utf8).write(to: URL(fileURLWithPath: tokenPath))
        gateway.configuration.admin = .init(listen: .init(host: "127.0.0.1", port: adminPort), token: .file(tokenPath))
    }

    /// The admin API's answer: status and body text.
    func call(_ method: HTTPMethod, _ path: String, json: [String: Any]? = nil, token: String? = nil) async throws -> (status: Int, body: String) {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(adminPort)\(path)")
        request.method = method
        request.headers.add(name: "Authorization", value: "Bearer \(token ?? self.token)")
        if let json {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: json)))
        }
        let response = try await http.execute(request, timeout: .seconds(10))
        return (Int(response.status.code), String(buffer: try await response.body.collect(upTo: 16 << 20)))
    }

    /// The decoded object of a call.
    func object(_ method: HTTPMethod, _ path: String, json: [String: Any]? = nil) async throws -> [String: Any] {
        let (_, body) = try await call(method, path, json: json)
        return (try JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: Any] ?? [:]
    }

    /// Starts a campaign; returns its id.
    func start(_ json: [String: Any]) async throws -> String {
        let answer = try await object(.POST, "/api/queries", json: json)
        return ((answer["query"] as? [String: Any])?["id"] as? String) ?? ""
    }

    /// Per node host identifier: (state, status, message, rows as JSON text).
    func states(_ id: String) async throws -> [String: String] {
        let answer = try await object(.GET, "/api/queries/\(id)")
        var states: [String: String] = [:]
        for node in answer["nodes"] as? [[String: Any]] ?? [] {
            states[node["host_identifier"] as? String ?? ""] = node["state"] as? String ?? ""
        }
        return states
    }

    /// An agent that opens a new connection per request, as osquery 5.23 does: a test that waits
    /// between two polls never sends on a connection the gateway just closed for idling.
    func agent(_ host: String) throws -> AgentEmulator {
        try AgentEmulator(baseURL: gateway.baseURL, caCertificate: gateway.pki.caCertificate, secret: gateway.secret, hostIdentifier: host,
                          newConnectionPerRequest: true)
    }

    func shutdown() async throws {
        try await http.shutdown()
    }

    /// A test that ends early skips `shutdown()`; AsyncHTTPClient would stop the test process.
    deinit {
        try? http.syncShutdown()
    }
}

/// Runs `body` with a started live-query gateway (`configure` may change it first) and always stops it.
func withLiveQueryGateway(
    configure: (TestGateway) throws -> Void = { _ in }, _ body: (LiveQueryGateway) async throws -> Void
) async throws {
    let live = try LiveQueryGateway()
    try configure(live.gateway)
    try await live.gateway.start()
    do {
        try await body(live)
    } catch {
        try? await live.gateway.stop()
        try? await live.shutdown()
        throw error
    }
    try await live.gateway.stop()
    try await live.shutdown()
}

extension AgentEmulator {
    /// A distributed write with one status and message per id, as osquery sends a failed query.
    func distributedWrite(_ id: String, rows: [[String: String]], status: Int, message: String) async throws -> Reply {
        try await go("/distributed/write", json: [
            "queries": [id: rows], "statuses": [id: status], "messages": [id: message], "node_key": nodeKey ?? "",
        ])
    }
}
