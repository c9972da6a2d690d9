import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import Support
@testable import Gateway

extension PostgresEndpoint {
    /// This database as a URL, for a configuration file or `store copy --to`.
    var testURL: String {
        let password = password.map { ":" + ($0.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? $0) } ?? ""
        return "postgres://\(username)\(password)@\(host):\(port)/\(database ?? username)"
    }
}

/// Real `osquery-gateway` processes sharing one PostgreSQL node store (issue 12), as a scaled-out
/// install runs them: the same server certificate, enroll secret, osquery config and admin token,
/// and each its own data folder (spool, file sink) and ports.
final class GatewayFleet: @unchecked Sendable {
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    /// What every agent gets from `/config`.
    static let config = #"{"options":{"logger_tls_period":5},"schedule":{"uptime":{"interval":60,"query":"SELECT * FROM uptime;"}}}"#

    let pki: TestPKI
    let secret: String
    let token: String
    let agentPorts: [Int]
    let adminPorts: [Int]
    /// Each gateway's folder: `gateway.yaml`, and `data/` with its spool and `logs/`.
    let directories: [String]
    private var children: [GatewayChild?]
    private let admin = HTTPClient(eventLoopGroupProvider: .singleton)

    /// Writes the configurations; starts nothing.
    /// - Parameter listen: the `listen` value for a port (the mapping form adds keys).
    init(count: Int, database: PostgresEndpoint, listen: (Int) -> String = { "127.0.0.1:\($0)" }) throws {
        let shared = makeTemporaryDirectory("fleet")
        let pki = try TestPKI(directory: shared + "/tls")
        let secret = "fleet-secret"
        let token = "fleet-admin-token-\(UUID().uuidString)"
        try Data((secret + "\n").utf8).write(to: URL(fileURLWithPath: shared + "/secret.txt"))
        try Data((token + "\n").utf8).write(to: URL(fileURLWithPath: shared + "/admin_token.txt"))
        try Data(#"{"schedule":{"uptime":{"query":"SELECT * FROM uptime;","interval":60}},"options":{"logger_tls_period":5}}"#.utf8)
            .write(to: URL(fileURLWithPath: shared + "/osquery.conf"))
        var ports = Set<Int>()
        while ports.count < 2 * count { ports.insert(freeLoopbackPort()) }
        let picked = Array(ports)
        let agentPorts = Array(picked[0..<count])
        let adminPorts = Array(picked[count...])
        var directories: [String] = []
        for index in 0..<count {
            let directory = shared + "/gateway\(index)"
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            try Data("""
                listen: \(listen(agentPorts[index]))
                data_dir: data
                log_level: notice
                tls: { certificate: "\(pki.serverCertificate)", private_key: "\(pki.serverKey)" }
                enrollment: { secrets: [{ name: default, file: "\(shared)/secret.txt" }] }
                agent_config: { sources: [{ name: base, file: "\(shared)/osquery.conf" }] }
                node_store: { postgres: "\(database.testURL)" }
                admin: { listen: "127.0.0.1:\(adminPorts[index])", token_file: "\(shared)/admin_token.txt" }
                spool: { commit_window: 5ms }
                sinks: [{ name: files, type: file, directory: logs }]

                """.utf8).write(to: URL(fileURLWithPath: directory + "/gateway.yaml"))
            directories.append(directory)
        }
        self.pki = pki
        self.secret = secret
        self.token = token
        self.agentPorts = agentPorts
        self.adminPorts = adminPorts
        self.directories = directories
        children = Array(repeating: nil, count: count)
    }

    func baseURL(_ index: Int) -> String { "https://127.0.0.1:\(agentPorts[index])" }

    /// The balancer's view of the gateways.
    var backends: [HAProxy.Backend] {
        zip(agentPorts, adminPorts).map { HAProxy.Backend(port: $0, healthPort: $1) }
    }

    /// Starts gateway `index` as a child process; `serving` waits until it takes connections.
    func launch(_ index: Int) throws {
        children[index] = try GatewayChild(["serve", "--config", directories[index] + "/gateway.yaml"])
    }

    /// Waits up to 20 s for gateway `index` to listen for agents and on its admin port.
    func serving(_ index: Int) async throws {
        guard let child = children[index] else { throw Failure(description: "gateway \(index) was not launched") }
        func up() -> Bool { child.output.contains("osquery-gateway listening on") && acceptsConnections(adminPorts[index]) }
        for _ in 0..<400 where !up() {
            guard child.process.isRunning else { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        guard up() else { throw Failure(description: "gateway \(index) did not start: \(child.errors)") }
    }

    func start(_ index: Int) async throws {
        try launch(index)
        try await serving(index)
    }

    /// SIGKILL: no drain, no flush, as when a machine dies.
    func sigkill(_ index: Int) {
        guard let child = children[index] else { return }
        Glibc.kill(child.process.processIdentifier, SIGKILL)
        child.process.waitUntilExit()
    }

    /// Stops every gateway still running (SIGTERM) and closes the admin client.
    func shutdown() async {
        for child in children {
            if let child, child.process.isRunning { _ = try? await child.stop(SIGTERM) }
        }
        try? await admin.shutdown()
    }

    /// A test that ends early skips `shutdown()`; kill what is left, and AsyncHTTPClient would stop
    /// the test process from its deinit.
    deinit {
        for child in children {
            if let child, child.process.isRunning { Glibc.kill(child.process.processIdentifier, SIGKILL) }
        }
        try? admin.syncShutdown()
    }

    /// An agent of this fleet at `baseURL` (a gateway or the balancer), with a new connection for
    /// every request as osquery 5.23; `like` gives it another agent's identity and node key.
    func agent(_ baseURL: String, like other: AgentEmulator? = nil) throws -> AgentEmulator {
        let agent = try AgentEmulator(baseURL: baseURL, caCertificate: pki.caCertificate, secret: secret, newConnectionPerRequest: true)
        if let other {
            agent.hostIdentifier = other.hostIdentifier
            agent.instanceID = other.instanceID
            agent.nodeKey = other.nodeKey
        }
        return agent
    }

    /// `POST /api/nodes/{host}/revoke` on gateway `index`'s admin API.
    func revoke(_ host: String, through index: Int) async throws -> (status: Int, body: String) {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(adminPorts[index])/api/nodes/\(host)/revoke")
        request.method = .POST
        request.headers.add(name: "Authorization", value: "Bearer \(token)")
        let response = try await admin.execute(request, timeout: .seconds(10))
        return (Int(response.status.code), String(buffer: try await response.body.collect(upTo: 1 << 20)))
    }

    /// A call to gateway `index`'s admin API: status, body bytes and headers.
    func admin(_ method: HTTPMethod, _ path: String, json: [String: Any]? = nil, through index: Int) async throws
        -> (status: Int, bytes: [UInt8], headers: HTTPHeaders) {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(adminPorts[index])\(path)")
        request.method = method
        request.headers.add(name: "Authorization", value: "Bearer \(token)")
        if let json {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: json)))
        }
        let response = try await admin.execute(request, timeout: .seconds(10))
        let body = try await response.body.collect(upTo: 64 << 20)
        return (Int(response.status.code), Array(body.readableBytesView), response.headers)
    }

    /// The decoded JSON object of an admin call on gateway `index`.
    func adminObject(_ method: HTTPMethod, _ path: String, json: [String: Any]? = nil, through index: Int) async throws -> [String: Any] {
        let answer = try await admin(method, path, json: json, through: index)
        return (try? JSONSerialization.jsonObject(with: Data(answer.bytes))) as? [String: Any] ?? [:]
    }

    /// Every `scale-...` column value in the result logs of all gateways' file sinks.
    func deliveredIDs() -> Set<String> {
        var ids = Set<String>()
        for directory in directories {
            let text = String(decoding: FileManager.default.contents(atPath: directory + "/data/logs/osqueryd.results.log") ?? Data(), as: UTF8.self)
            for line in text.split(separator: "\n") {
                if let range = line.range(of: #"scale-[a-z0-9-]+"#, options: .regularExpression) { ids.insert(String(line[range])) }
            }
        }
        return ids
    }
}
