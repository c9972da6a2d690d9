import AsyncHTTPClient
import Metrics
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import Support

/// Posts osquery bodies to the backend and says what each answer means (`UpstreamAnswer`).
///
/// Every request is built here from nothing but the body, so headers an agent sent never reach the
/// backend: identity headers (`X-Client-Cert-*` or whatever the operator named them) and
/// `X-Forwarded-For` are the gateway's own, from what it verified (`AgentOrigin`). The client is the
/// outbound-HTTP type every client here uses (`HTTPEndpoint.makeClient`): a keep-alive pool with
/// HTTP/2 where the backend offers it over TLS, an idle timeout shorter than the backend's, and a
/// request timeout below osquery's 16 s deadline, so the gateway always answers the agent itself.
/// At most `max_concurrent` requests are in flight (`RequestPermits`); one past it waits
/// `max_concurrent_wait` at most and is then `unavailable`, which every caller answers as an outage.
final class UpstreamClient: Sendable {
    /// The backend endpoint a request goes to (also the `endpoint` label of `upstream_requests`).
    enum Call: String, Sendable, CaseIterable {
        case enroll, config, logger
        case distributedRead = "distributed_read"
        case distributedWrite = "distributed_write"
        case carveStart = "carve_start"
        case carveBlock = "carve_block"
    }

    let configuration: Upstream.Configuration
    private let client: HTTPClient
    /// Bounds how many keys the backend may refuse per minute before refusals count as its failure.
    let refusals = RefusalBreaker()
    /// The hard cap on requests in flight to the backend.
    let permits: RequestPermits
    /// The largest answer read (configs are at most a few MiB; anything larger is not an osquery answer).
    static let maxAnswer = 16 << 20
    /// Bodies in several parts up to this size are sent as one buffer: copying a few KiB costs less
    /// than writing (and encrypting) each part on its own. Larger ones, such as a distributed write,
    /// go as the slices of the agent's buffer they are, never copied.
    static let joinedBodyLimit = 16 << 10

    /// What every request to one endpoint shares, made once rather than per request: the request
    /// with its URL, method and fixed headers, and the `upstream_requests` counters of its outcomes.
    private struct Route: Sendable {
        var request: HTTPClientRequest
        var answered: Counter
        var nodeInvalid: Counter
        var unavailable: Counter
        /// Past `max_concurrent`, no slot within `max_concurrent_wait`.
        var saturated: Counter
    }

    /// One route per `Call` (all of them, made in `init`).
    private let routes: [Call: Route]
    /// The operator's headers carry an `Authorization` of their own: no `NodeKey` one is added.
    private let hasOwnAuthorization: Bool

    /// Makes the client and each endpoint's request and counters; call it after the metrics system
    /// is bootstrapped (`serve` does so first), or the counters count nothing.
    /// - Throws: when the CA, certificate or key file cannot be read.
    init(configuration: Upstream.Configuration) throws {
        self.configuration = configuration
        permits = RequestPermits(limit: configuration.maxConcurrent)
        var routes: [Call: Route] = [:]
        for call in Call.allCases {
            var request = configuration.endpoint.request(to: configuration.url(Self.path(call, in: configuration.endpoints)))
            request.method = .POST
            request.headers.replaceOrAdd(name: "Content-Type", value: "application/json")
            request.headers.replaceOrAdd(name: "Accept", value: "application/json")
            func counter(_ outcome: String) -> Counter {
                Counter(label: "upstream_requests", dimensions: [("endpoint", call.rawValue), ("outcome", outcome)])
            }
            routes[call] = Route(
                request: request, answered: counter("answered"), nodeInvalid: counter("node_invalid"),
                unavailable: counter("unavailable"), saturated: counter("saturated"))
        }
        self.routes = routes
        hasOwnAuthorization = configuration.endpoint.headers.contains { $0.name.lowercased() == "authorization" }
        client = try configuration.endpoint.makeClient()
    }

    func path(_ call: Call) -> String { Self.path(call, in: configuration.endpoints) }

    static func path(_ call: Call, in paths: OsqueryEndpoints) -> String {
        switch call {
        case .enroll: return paths.enroll
        case .config: return paths.config
        case .logger: return paths.logger
        case .distributedRead: return paths.distributedRead
        case .distributedWrite: return paths.distributedWrite
        case .carveStart: return paths.carveStart
        case .carveBlock: return paths.carveBlock
        }
    }

    /// Posts `body` to the backend's `call` endpoint.
    /// - Parameters:
    ///   - nodeKey: the backend's key for the node, also sent as `Authorization: NodeKey` as osquery
    ///     5.23 does (when it is printable ASCII and the operator set no `Authorization` of their own).
    ///   - origin: the agent's connection, for the identity headers and `X-Forwarded-For`.
    func post(_ call: Call, body: UpstreamBody, nodeKey: String? = nil, origin: AgentOrigin? = nil) async -> UpstreamAnswer {
        // Every case has a route: `init` makes one for each of `Call.allCases`.
        let route = routes[call]!
        guard await permits.acquire(waiting: configuration.maxConcurrentWait) else {
            route.saturated.increment()
            return .unavailable("more than \(configuration.maxConcurrent) requests to the backend at once (upstream.max_concurrent)")
        }
        defer { permits.release() }
        var request = route.request
        request.headers.replaceOrAdd(name: "User-Agent", value: origin?.userAgent.map(Self.headerSafe) ?? "osquery-gateway")
        if let nodeKey, !hasOwnAuthorization, !nodeKey.isEmpty, nodeKey.utf8.allSatisfy({ (0x21...0x7E).contains($0) }) {
            request.headers.add(name: "Authorization", value: "NodeKey \(nodeKey)")
        }
        if let address = origin?.address { request.headers.replaceOrAdd(name: "X-Forwarded-For", value: address) }
        if let certificate = origin?.certificate {
            for (name, value) in identityHeaders(certificate) { request.headers.replaceOrAdd(name: name, value: value) }
        }
        request.body = Self.requestBody(body)
        var answer: UpstreamAnswer
        do {
            let response = try await client.execute(request, timeout: configuration.endpoint.requestTimeAmount)
            let bytes = try await response.body.collect(upTo: Self.maxAnswer)
            answer = UpstreamAnswer.classify(status: Int(response.status.code), body: bytes)
        } catch {
            answer = .unavailable("\(error)")
        }
        if case .nodeInvalid = answer, !refusals.admit() {
            answer = .unavailable("the backend refused more than \(RefusalBreaker.limit) node keys within a minute; treated as a backend failure, not as revocations")
        }
        switch answer {
        case .answered: route.answered.increment()
        case .nodeInvalid: route.nodeInvalid.increment()
        case .unavailable: route.unavailable.increment()
        }
        return answer
    }

    /// `body` as AsyncHTTPClient sends it: one buffer as is; several parts joined when small
    /// (`joinedBodyLimit`), else streamed part by part with their total as `Content-Length`.
    static func requestBody(_ body: UpstreamBody) -> HTTPClientRequest.Body {
        if body.parts.count == 1 { return .bytes(body.parts[0]) }
        let length = body.length
        if length <= joinedBodyLimit { return .bytes(body.joined) }
        return .stream(UpstreamBodyParts(parts: body.parts), length: .known(length))
    }

    /// The configured identity headers for a verified client certificate; none without one.
    func identityHeaders(_ certificate: PeerCertificate?) -> [(String, String)] {
        guard let certificate else { return [] }
        let names = configuration.identityHeaders
        var headers: [(String, String)] = []
        if let name = names.fingerprint { headers.append((name, certificate.fingerprint)) }
        if let name = names.subject { headers.append((name, Self.headerSafe(certificate.subject))) }
        if let name = names.serial { headers.append((name, certificate.serial)) }
        if let name = names.subjectAlternativeNames, !certificate.subjectAlternativeNames.isEmpty {
            headers.append((name, Self.headerSafe(certificate.subjectAlternativeNames.joined(separator: ", "))))
        }
        return headers
    }

    /// `text` with control characters replaced, so a header value cannot be split or refused
    /// (returned as is, without a copy, when it has none: the common case).
    static func headerSafe(_ text: String) -> String {
        guard text.utf8.contains(where: { $0 < 0x20 || $0 == 0x7F }) else { return text }
        return String(decoding: text.utf8.map { $0 < 0x20 || $0 == 0x7F ? UInt8(ascii: "?") : $0 }, as: UTF8.self)
    }

    func shutdown() async {
        try? await client.shutdown()
    }
}

/// A backend whose database fails may answer `node_invalid` for every key (osctrl does). Taken at
/// its word that would revoke the whole fleet at the gateway and re-enroll it at once, so past
/// `limit` refusals within a minute the rest count as the backend failing (an error body, logs kept
/// for later) until the minute is over. A real mass revocation at the backend still reaches every
/// node, `limit` per minute.
final class RefusalBreaker: Sendable {
    static let limit = 50
    private let window = NIOLockedValueBox<(start: NIODeadline, count: Int)>((.now(), 0))

    /// Whether one more refusal may be taken as one.
    func admit(now: NIODeadline = .now()) -> Bool {
        window.withLockedValue { window in
            if now - window.start > .minutes(1) { window = (now, 0) }
            window.count += 1
            return window.count <= Self.limit
        }
    }
}
