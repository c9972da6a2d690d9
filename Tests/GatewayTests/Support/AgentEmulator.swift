import AsyncHTTPClient
import CompressNIO
import Foundation
import NIOCore
import NIOHTTP1
import NIOSSL

/// An osquery agent as docs/protocol.md describes it, for driving the real server over TLS.
///
/// It sends what osqueryd 5.23 sends (headers of 1.3, bodies of sections 2-6, gzip logger bodies,
/// `Authorization: NodeKey`, the `tls_secret_always` URL parameter, the `tls_enroll_override` field,
/// the `tls_node_api` URL form)
/// and judges each answer the way osquery does: by the body only (1.5). The status is kept for tests
/// that assert it, but never decides success.
final class AgentEmulator: @unchecked Sendable {
    /// What osquery concludes from a response body.
    enum Outcome: Equatable {
        /// A JSON object without `error` or `node_invalid: true` (an empty body counts as `{}`).
        case accepted
        /// `node_invalid: true`: the key is dropped and the agent re-enrolls.
        case nodeInvalid
        /// An `error` member, or a body that is not JSON: the agent keeps its data and retries.
        case failed
    }

    struct Reply {
        var status: Int
        var body: String
        var headers: HTTPHeaders
        var rawBody: [UInt8] = []
        var json: [String: Any]? {
            (try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: Any]
        }
        /// osquery's verdict for config, logger and distributed requests (docs/protocol.md#status-codes).
        var outcome: Outcome {
            if body.isEmpty { return .accepted }
            guard let json else { return .failed }
            if json["node_invalid"] as? Bool == true { return .nodeInvalid }
            if json["error"] != nil { return .failed }
            return .accepted
        }
    }

    let baseURL: String
    let client: HTTPClient
    var nodeKey: String?
    var secret: String
    var hostIdentifier: String
    var instanceID = UUID().uuidString
    /// `osquery_info.version` in the enroll body's host details.
    var osqueryVersion = "5.23.1"
    /// osquery `--tls_enroll_override`.
    var secretField = "enroll_secret"
    /// osquery `--tls_secret_always`.
    var secretAlways = false
    /// osquery `--logger_tls_compress`.
    var compressLogs = false
    /// Send the 5.23 `Authorization` header (older agents do not).
    var sendsAuthorizationHeader = true
    /// osquery `--tls_node_api` (docs/protocol.md#node-api): every URL but enroll's is
    /// `/<key><path>`, go() requests (config, logger, distributed) add `&node_key=<key>`, config and
    /// distributed bodies leave `node_key` out, and config is a body-less GET.
    var nodeAPI = false
    /// The key osquery put in node-API paths when it built its URLs at start (a re-enrolled agent
    /// keeps the old one there until it restarts); nil: the current key.
    var nodeAPIPathKey: String?

    /// - Parameters:
    ///   - caCertificate: the agent's `--tls_server_certs`.
    ///   - clientPair: the agent's `--tls_client_cert` and `--tls_client_key`.
    ///   - newConnectionPerRequest: open a new connection for every request, as osquery 5.23 does
    ///     (docs/protocol.md#connections), so a TCP balancer spreads one agent's requests.
    init(baseURL: String, caCertificate: String, clientPair: (certificate: String, key: String)? = nil, secret: String,
         hostIdentifier: String = "host-\(UUID().uuidString.prefix(6))", maximumTLSVersion: TLSVersion? = nil,
         newConnectionPerRequest: Bool = false) throws {
        self.baseURL = baseURL
        self.secret = secret
        self.hostIdentifier = hostIdentifier
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(caCertificate))
        tls.minimumTLSVersion = maximumTLSVersion == nil ? .tlsv12 : .tlsv1
        tls.maximumTLSVersion = maximumTLSVersion
        if let clientPair {
            tls.certificateChain = try NIOSSLCertificate.fromPEMFile(clientPair.certificate).map { .certificate($0) }
            tls.privateKey = .privateKey(try NIOSSLPrivateKey(file: clientPair.key, format: .pem))
        }
        var configuration = HTTPClient.Configuration(tlsConfiguration: tls)
        configuration.timeout = .init(connect: .seconds(5), read: .seconds(16))
        configuration.connectionPool.retryConnectionEstablishment = false
        if newConnectionPerRequest { configuration.maximumUsesPerConnection = 1 }
        client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    func shutdown() async throws {
        try await client.shutdown()
    }

    /// A test that ends early (a failed `#require`) skips `shutdown()`; AsyncHTTPClient would then
    /// stop the whole test process from its deinit, hiding every other result.
    deinit {
        try? client.syncShutdown()
    }

    // MARK: - Endpoints

    /// Enrolls and caches the key; returns the reply. A reply without a string `node_key` is a failure.
    @discardableResult
    func enroll(path: String = "/enroll") async throws -> Reply {
        let body: [String: Any] = [
            secretField: secretAlways ? "" : secret,
            "host_identifier": hostIdentifier,
            "platform_type": "9",
            "host_details": [
                "os_version": ["name": "Debian GNU/Linux", "version": "12", "platform": "debian", "pid_with_namespace": "0"],
                "osquery_info": ["version": osqueryVersion, "instance_id": instanceID, "uuid": "uuid-\(hostIdentifier)"],
                "system_info": ["hostname": hostIdentifier, "uuid": "uuid-\(hostIdentifier)"],
            ],
        ]
        let reply = try await post(path, json: body, authorized: false)
        nodeKey = reply.json?["node_key"] as? String ?? reply.json?["id"] as? String
        return reply
    }

    func config(path: String = "/config") async throws -> Reply {
        if nodeAPI { return try await go(path, json: nil) }
        return try await go(path, json: ["node_key": nodeKey ?? ""])
    }

    func log(_ type: String, _ items: [[String: Any]], path: String = "/logger") async throws -> Reply {
        try await go(path, json: ["node_key": nodeKey ?? "", "log_type": type, "data": items], gzip: compressLogs)
    }

    func distributedRead(path: String = "/distributed/read") async throws -> Reply {
        let body: [String: Any] = nodeAPI ? [:] : ["node_key": nodeKey ?? ""]
        return try await go(path, json: body)
    }

    func distributedWrite(_ results: [String: [[String: String]]], path: String = "/distributed/write") async throws -> Reply {
        var statuses: [String: Int] = [:]
        var messages: [String: String] = [:]
        var stats: [String: [String: Int]] = [:]
        for id in results.keys {
            statuses[id] = 0
            messages[id] = ""
            stats[id] = ["wall_time_ms": 3, "user_time": 1, "system_time": 0, "memory": 0]
        }
        var body: [String: Any] = ["queries": results, "statuses": statuses, "messages": messages, "stats": stats]
        if !nodeAPI { body["node_key"] = nodeKey ?? "" }
        return try await go(path, json: body)
    }

    /// A go() request: on `node_invalid` the cached key is dropped, as osquery does. `json` nil is
    /// the body-less GET of a node-API config request.
    func go(_ path: String, json: [String: Any]?, gzip: Bool = false) async throws -> Reply {
        let reply: Reply
        if let json {
            let data = try JSONSerialization.data(withJSONObject: json)
            reply = try await send(.POST, path, body: ByteBuffer(bytes: data), authorized: true, gzip: gzip, nodeKeySuffix: true)
        } else {
            reply = try await send(.GET, path, body: nil, authorized: true, nodeKeySuffix: true)
        }
        if reply.outcome == .nodeInvalid { nodeKey = nil }
        return reply
    }

    // MARK: - Wire

    func post(_ path: String, json: [String: Any], authorized: Bool, gzip: Bool = false) async throws -> Reply {
        let data = try JSONSerialization.data(withJSONObject: json)
        return try await post(path, body: ByteBuffer(bytes: data), authorized: authorized, gzip: gzip)
    }

    /// Sends raw bytes with osquery's headers. `authorized`: a request after enrollment, with the
    /// key in the `Authorization` header and, in node-API mode, in the path (never enroll's).
    func post(_ path: String, body: ByteBuffer, authorized: Bool = true, gzip: Bool = false, extraHeaders: [(String, String)] = []) async throws -> Reply {
        try await send(.POST, path, body: body, authorized: authorized, gzip: gzip, extraHeaders: extraHeaders)
    }

    /// The URL osquery builds (`TLSRequestHelper::makeURI`, then go()'s suffix).
    func url(_ path: String, authorized: Bool, nodeKeySuffix: Bool) -> String {
        var url = baseURL
        if nodeAPI && authorized { url += "/" + (nodeAPIPathKey ?? nodeKey ?? "") }
        url += path
        if secretAlways {
            url += (url.contains("?") ? "&" : "?") + secretField + "=" + secret  // not URL-encoded, as osquery does
        }
        // Appended even when there is no `?`, as osquery does.
        if nodeAPI && authorized && nodeKeySuffix { url += "&node_key=" + (nodeKey ?? "") }
        return url
    }

    /// One request as osquery sends it; `body` nil for a GET.
    func send(
        _ method: HTTPMethod, _ path: String, body: ByteBuffer?, authorized: Bool, gzip: Bool = false, nodeKeySuffix: Bool = false,
        extraHeaders: [(String, String)] = []
    ) async throws -> Reply {
        var request = HTTPClientRequest(url: url(path, authorized: authorized, nodeKeySuffix: nodeKeySuffix))
        request.method = method
        if body != nil { request.headers.add(name: "Content-Type", value: "application/json") }
        request.headers.add(name: "Accept", value: "application/json")
        request.headers.add(name: "User-Agent", value: "osquery/5.23.1")
        if authorized, sendsAuthorizationHeader, let nodeKey, !nodeKey.isEmpty {
            request.headers.add(name: "Authorization", value: "NodeKey \(nodeKey)")
        }
        for (name, value) in extraHeaders { request.headers.add(name: name, value: value) }
        if var payload = body {
            if gzip {
                payload = try payload.compress(with: .gzip())
                request.headers.add(name: "Content-Encoding", value: "gzip")
            }
            request.body = .bytes(payload)
        }
        let response = try await client.execute(request, timeout: .seconds(16))
        let bytes = try await response.body.collect(upTo: 64 << 20)
        return Reply(status: Int(response.status.code), body: String(buffer: bytes), headers: response.headers, rawBody: Array(bytes.readableBytesView))
    }
}

/// A result item as osquery 5.23 builds it in event format (docs/protocol.md#logger).
func resultItem(_ name: String, host: String, columns: [String: String], action: String = "added", counter: Int = 1) -> [String: Any] {
    [
        "name": name, "hostIdentifier": host, "calendarTime": "Tue Mar  3 14:05:06 2026 UTC", "unixTime": 1_772_546_706,
        "epoch": 0, "counter": counter, "numerics": false, "decorations": ["host_uuid": "uuid-\(host)"],
        "columns": columns, "action": action,
    ]
}

/// A status item (docs/protocol.md#logger).
func statusItem(_ message: String, host: String, severity: Int = 0) -> [String: Any] {
    [
        "hostIdentifier": host, "calendarTime": "Tue Mar  3 14:05:06 2026 UTC", "unixTime": 1_772_546_706,
        "severity": severity, "filename": "scheduler.cpp", "line": 83, "message": message, "version": "5.23.1",
    ]
}

extension TestGateway {
    /// An agent trusting this gateway's CA, optionally with a client certificate from `pki`.
    func agent(client: String? = nil) throws -> AgentEmulator {
        try AgentEmulator(baseURL: baseURL, caCertificate: pki.caCertificate, clientPair: client.map { pki.client($0) }, secret: secret)
    }

    /// Runs `body` with an agent and shuts its HTTP client down afterwards.
    func withAgent(client: String? = nil, _ body: (AgentEmulator) async throws -> Void) async throws {
        let agent = try agent(client: client)
        do {
            try await body(agent)
        } catch {
            try? await agent.shutdown()
            throw error
        }
        try await agent.shutdown()
    }
}
