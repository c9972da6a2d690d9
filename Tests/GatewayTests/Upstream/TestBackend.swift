import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOSSL
import ServiceLifecycle

/// An osquery backend for the gateway to stand in front of: the server side of the TLS remote API
/// (docs/protocol.md) at 127.0.0.1, on plain HTTP or, with `tls`, on HTTPS (optionally requiring a
/// client certificate), with Fleet's paths, recording every request, and with the failures real
/// backends have, switchable while it runs.
///
/// Keys: enrollment hands out `backend-key-<n>` (or `sameKey` for every node, as osquery's own
/// reference server does); `validKeys` also holds keys issued "before the gateway existed".
final class TestBackend: @unchecked Sendable {
    /// How the backend answers right now.
    enum Failure: Sendable, Equatable {
        case none
        /// Waits this long before answering (past the gateway's request timeout).
        case slow(Duration)
        /// Answers only once the failure is changed again (at most a minute): a hold that lasts
        /// exactly as long as the test needs, however slowly a loaded machine runs it.
        case held
        /// 500 with an empty body.
        case emptyServerError
        /// 200 with a body that is not JSON.
        case garbage
        /// 200 with `{"error":"database down"}`: a JSON answer osquery treats as a failure.
        case errorBody
    }

    struct Received: Sendable {
        var path: String
        var body: String
        var headers: HTTPFields
        var json: [String: Any]? { (try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: Any] }
    }

    struct State {
        var failure = Failure.none
        var secret = "backend-secret"
        var sameKey: String?
        var validKeys: Set<String> = []
        /// Keys answered `node_invalid` whatever else holds.
        var refusedKeys: Set<String> = []
        var issued = 0
        var carves: [String: [String]] = [:]
        var received: [Received] = []
    }

    static let paths = (
        enroll: "/api/osquery/enroll", config: "/api/osquery/config", logger: "/api/osquery/log",
        distributedRead: "/api/osquery/distributed/read", distributedWrite: "/api/osquery/distributed/write",
        carveStart: "/api/osquery/carve/begin", carveBlock: "/api/osquery/carve/block")

    /// The config every valid node gets.
    static let config = #"{"schedule":{"backend_processes":{"query":"SELECT * FROM processes;","interval":30}},"options":{"distributed_interval":10}}"#
    /// The distributed read answer: one query and an integer `accelerate`.
    static let queries = #"{"queries":{"backend_q1":"SELECT * FROM osquery_info;"},"accelerate":60}"#

    /// The answer of `Failure.errorBody`.
    static let errorBody = #"{"error":"database down"}"#

    /// Fleet's answer to a key it does not know.
    static let invalid = #"{"error":"invalid node key","node_invalid":true}"#

    @Sendable static func valid(_ state: State, _ json: [String: Any]) -> Bool {
        guard let key = json["node_key"] as? String else { return false }
        return state.validKeys.contains(key) && !state.refusedKeys.contains(key)
    }

    let state = NIOLockedValueBox(State())
    /// Serves HTTPS with `tls`'s server certificate (for `localhost` and `127.0.0.1`) when set.
    let tls: TestPKI?
    /// Only clients with a certificate from `tls`'s CA complete the handshake.
    let requiresClientCertificate: Bool
    private(set) var port = 0
    private var group: ServiceGroup?
    private var task: Task<Void, any Error>?

    var url: String { (tls == nil ? "http" : "https") + "://127.0.0.1:\(port)" }

    init(tls: TestPKI? = nil, requiresClientCertificate: Bool = false) {
        self.tls = tls
        self.requiresClientCertificate = requiresClientCertificate
    }

    func update(_ change: (inout State) -> Void) { state.withLockedValue(change) }

    /// Requests received on `path`, in order.
    func received(_ path: String) -> [Received] { state.withLockedValue { $0.received.filter { $0.path == path } } }

    /// Waits up to `timeout` until `path` has had `count` requests; returns them.
    func waitFor(_ path: String, count: Int, timeout: Duration = .seconds(10)) async -> [Received] {
        let deadline = ContinuousClock.now + timeout
        var got = received(path)
        while got.count < count && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20))
            got = received(path)
        }
        return got
    }

    /// Starts (or restarts, on the same port) serving.
    func start() async throws {
        let router = Router()
        let state = self.state
        func route(_ path: String, _ answer: @escaping @Sendable (inout State, [String: Any]) -> String) {
            router.post(RouterPath(path)) { request, _ -> Response in
                let bytes = try await request.body.collect(upTo: 64 << 20)
                let received = Received(path: path, body: String(buffer: bytes), headers: request.headers)
                let failure = state.withLockedValue { state -> Failure in
                    state.received.append(received)
                    return state.failure
                }
                switch failure {
                case .none: break
                case .slow(let delay): try await Task.sleep(for: delay)
                case .held:
                    let deadline = ContinuousClock.now + .seconds(60)
                    while state.withLockedValue({ $0.failure == .held }), ContinuousClock.now < deadline {
                        try await Task.sleep(for: .milliseconds(20))
                    }
                case .emptyServerError: return Response(status: .internalServerError)
                case .garbage: return Response(status: .ok, body: .init(byteBuffer: ByteBuffer(string: "<html>Bad Gateway</html>")))
                case .errorBody:
                    return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: Self.errorBody)))
                }
                let json = received.json ?? [:]
                let body = state.withLockedValue { answer(&$0, json) }
                return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: body)))
            }
        }
        let valid = Self.valid
        let invalid = Self.invalid
        route(Self.paths.enroll) { state, json in
            guard json["enroll_secret"] as? String == state.secret else { return #"{"node_invalid":true}"# }
            state.issued += 1
            let key = state.sameKey ?? "backend-key-\(state.issued)"
            state.validKeys.insert(key)
            return #"{"node_key":"\#(key)"}"#
        }
        route(Self.paths.config) { state, json in valid(state, json) ? Self.config : invalid }
        route(Self.paths.logger) { state, json in valid(state, json) ? "{}" : invalid }
        route(Self.paths.distributedRead) { state, json in valid(state, json) ? Self.queries : invalid }
        route(Self.paths.distributedWrite) { state, json in valid(state, json) ? "{}" : invalid }
        route(Self.paths.carveStart) { state, json in
            guard valid(state, json), let id = json["carve_id"] as? String else { return invalid }
            let session = "session-\(id)"
            state.carves[session] = []
            return #"{"session_id":"\#(session)"}"#
        }
        route(Self.paths.carveBlock) { state, json in
            guard let session = json["session_id"] as? String, state.carves[session] != nil, let data = json["data"] as? String else {
                return #"{"error":"unknown carve session"}"#
            }
            state.carves[session]!.append(data)
            return "{}"
        }
        var logger = Logger(label: "test-backend")
        logger.logLevel = .critical
        let portBox = NIOLockedValueBox<CheckedContinuation<Int, Never>?>(nil)
        let app = Application(
            router: router, server: try serverBuilder(), configuration: .init(address: .hostname("127.0.0.1", port: port)),
            onServerRunning: { channel in portBox.withLockedValue { $0?.resume(returning: channel.localAddress!.port!); $0 = nil } },
            logger: logger)
        let group = ServiceGroup(configuration: .init(services: [app], logger: logger))
        self.group = group
        port = await withCheckedContinuation { continuation in
            portBox.withLockedValue { $0 = continuation }
            task = Task { try await group.run() }
        }
    }

    /// Plain HTTP/1.1, or HTTP/1.1 over TLS with the test PKI's server certificate; a required
    /// client certificate must chain to the same PKI's CA (as the gateway's own listener checks them).
    private func serverBuilder() throws -> HTTPServerBuilder {
        guard let tls else { return .http1() }
        let chain = try NIOSSLCertificate.fromPEMFile(tls.serverCertificate).map { NIOSSLCertificateSource.certificate($0) }
        let key = try NIOSSLPrivateKey(file: tls.serverKey, format: .pem)
        var configuration = TLSConfiguration.makeServerConfiguration(certificateChain: chain, privateKey: .privateKey(key))
        configuration.minimumTLSVersion = .tlsv12
        configuration.shutdownTimeout = .milliseconds(300)
        if requiresClientCertificate {
            configuration.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(tls.caCertificate))
            configuration.certificateVerification = .noHostnameVerification
        }
        return try .tls(.http1(), tlsConfiguration: configuration)
    }

    /// Stops serving ("the backend is down"): connections are refused until `start()`.
    func stop() async {
        await group?.triggerGracefulShutdown()
        _ = try? await task?.value
        group = nil
        task = nil
    }
}
