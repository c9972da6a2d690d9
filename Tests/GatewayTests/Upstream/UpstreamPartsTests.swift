import Foundation
import NIOCore
import Sinks
import Support
import Testing
@testable import Gateway

/// The upstream mode's parts without a network: what a backend answer means, body rewriting,
/// key sealing, the upstream sink's bodies and the configuration section.
@Suite struct UpstreamPartsTests {
    /// Only a definite `node_invalid` is one; everything that may be an outage is `unavailable`.
    @Test(arguments: [
        (200, #"{"node_key":"k"}"#, "answered key=k"),
        (200, #"{"id":"k2"}"#, "answered key=k2"),
        (200, #"{"node_invalid":true}"#, "node_invalid"),
        (401, #"{"error":"invalid node key","node_invalid":true}"#, "node_invalid"),
        (200, #"{"node_invalid":false,"queries":{}}"#, "answered"),
        (200, #"{"node_invalid":"true"}"#, "answered"),
        (200, #"{"error":"database down"}"#, "answered error"),
        (404, #"{"foo":"bar"}"#, "answered error"),
        (400, #"{"node_key":"k"}"#, "answered error"),
        (403, #"{"message":"Forbidden"}"#, "unavailable"),
        (429, #"{"error":"slow down"}"#, "unavailable"),
        (401, #"{"error":"proxy login"}"#, "unavailable"),
        (500, #"{"node_invalid":true}"#, "unavailable"),
        (502, "", "unavailable"),
        (200, "", "unavailable"),
        (200, "   ", "unavailable"),
        (200, "<html>Bad Gateway</html>", "unavailable"),
        (200, "[]", "unavailable"),
        (200, #"{"a":1} trailing"#, "unavailable"),
    ])
    func backendAnswersAreClassified(status: Int, body: String, expected: String) {
        let verdict: String
        switch UpstreamAnswer.classify(status: status, body: ByteBuffer(string: body)) {
        case .answered(let reply):
            verdict = "answered" + (reply.hasError ? " error" : "") + (reply.nodeKey.map { " key=\($0)" } ?? "")
            #expect(String(buffer: reply.body) == body)
        case .nodeInvalid: verdict = "node_invalid"
        case .unavailable: verdict = "unavailable"
        }
        #expect(verdict == expected)
    }

    /// A backend refusing every key at once (osctrl while its database is down) is failing: past the
    /// limit within a minute, refusals stop counting as revocations.
    @Test func refusalsPastTheLimitWithinAMinuteAreABackendFailure() {
        let breaker = RefusalBreaker()
        let start = NIODeadline.now()
        #expect((0..<RefusalBreaker.limit).allSatisfy { _ in breaker.admit(now: start) })
        #expect(!breaker.admit(now: start + .seconds(30)))
        #expect(breaker.admit(now: start + .seconds(61)))
    }

    /// `upstream.max_concurrent`: past the cap a request waits at most its wait, then gets no slot;
    /// a slot that comes free goes to the waiter.
    @Test func permitsPastTheCapWaitThenGiveUpOrTakeAFreedSlot() async {
        let permits = RequestPermits(limit: 2)
        #expect(await permits.acquire(waiting: .zero))
        #expect(await permits.acquire(waiting: .zero))
        #expect(await permits.acquire(waiting: .zero) == false)
        let start = ContinuousClock.now
        #expect(await permits.acquire(waiting: .milliseconds(50)) == false)
        #expect(ContinuousClock.now - start >= .milliseconds(50))
        #expect(permits.inUse == 2)
        async let waiter = permits.acquire(waiting: .seconds(5))
        try? await Task.sleep(for: .milliseconds(20))
        permits.release()
        #expect(await waiter)
        #expect(permits.inUse == 2)
        permits.release()
        permits.release()
        #expect(permits.inUse == 0)
        #expect(await permits.acquire(waiting: .zero))
    }

    /// `upstream.last_good_configs`: past the cap the least recently used nodes are forgotten, and a
    /// rendering no remembered node needs goes once renderings pass their own cap.
    @Test func theLastGoodConfigCacheForgetsTheLeastRecentlyUsedNodes() {
        func rendered(_ text: String) -> AgentConfigService.Rendered {
            AgentConfigService.Rendered(json: ByteBuffer(string: text), gzipped: ByteBuffer(), origins: [:], warnings: [])
        }
        let cache = UpstreamConfigCache<String>(maxNodes: 2, maxRendered: 1)
        let at = Date(timeIntervalSince1970: 1_000)
        cache.remember(rendered(#"{"a":1}"#), key: "A", for: "n1", at: at)
        cache.remember(rendered(#"{"b":1}"#), key: "B", for: "n2", at: at)
        #expect(cache.counts.nodes == 2 && cache.counts.rendered == 2)
        // n1 is used again (an outage answer), so n2 is the least recently used.
        #expect(cache.lastGood(for: "n1").map { String(buffer: $0.config.json) } == #"{"a":1}"#)
        cache.remember(rendered(#"{"a":1}"#), key: "A", for: "n3", at: at.addingTimeInterval(5))
        #expect(cache.lastGood(for: "n2") == nil)
        #expect(cache.lastGood(for: "n1")?.fetchedAt == at)
        #expect(cache.lastGood(for: "n3")?.fetchedAt == at.addingTimeInterval(5))
        #expect(cache.counts.nodes == 2)
        #expect(cache.rendered("B") == nil)
        #expect(cache.counts.rendered == 1)
        #expect(cache.lastGood(for: "never") == nil)
    }

    @Test func aBodyKeepsEveryMemberButTheReplacedOne() throws {
        let body = ByteBuffer(string: #"{"queries":{"q":[{"a":"1"}]}, "node_key":"gw","statuses":{"q":0},"node_key":"again"}"#)
        let replaced = try UpstreamBody.replacing("node_key", with: #""backend""#, in: body)
        #expect(String(buffer: replaced.joined) == #"{"queries":{"q":[{"a":"1"}]},"statuses":{"q":0},"node_key":"backend"}"#)
        #expect(replaced.length == replaced.joined.readableBytes)
        let only = try UpstreamBody.replacing("node_key", with: #""k""#, in: ByteBuffer(string: #"{"node_key":"gw"}"#))
        #expect(String(buffer: only.joined) == #"{"node_key":"k"}"#)
        let empty = try UpstreamBody.replacing("enroll_secret", with: #""s""#, in: ByteBuffer(string: "{}"))
        #expect(String(buffer: empty.joined) == #"{"enroll_secret":"s"}"#)
        #expect(throws: JSONError.self) { try UpstreamBody.replacing("node_key", with: nil, in: ByteBuffer(string: "[1]")) }
    }

    /// A large body is streamed as its slices, and can be read again from the start (a request
    /// sent again); header values are copied only when they need a repair.
    @Test func bodyPartsStreamAsTheyAreAndAgain() async {
        let parts = UpstreamBodyParts(parts: [ByteBuffer(string: "{"), ByteBuffer(string: #""a":1"#), ByteBuffer(string: "}")])
        for _ in 0..<2 {
            var iterator = parts.makeAsyncIterator()
            var read: [String] = []
            while let part = await iterator.next() { read.append(String(buffer: part)) }
            #expect(read == ["{", #""a":1"#, "}"])
        }
        #expect(UpstreamClient.headerSafe("osquery/5.23.1") == "osquery/5.23.1")
        #expect(UpstreamClient.headerSafe("evil\r\nX-Injected: 1") == "evil??X-Injected: 1")
    }

    @Test func sealedKeysOpenOnlyWithTheirKeyFile() throws {
        let directory = makeTemporaryDirectory("seal")
        let path = directory + "/data/upstream.key"
        let sealer = try UpstreamKeySealer.loadOrCreate(path: path)
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
        let sealed = try sealer.seal("this_is_a_node_secret")
        #expect(!String(decoding: sealed, as: UTF8.self).contains("this_is_a_node_secret"))
        #expect(try sealer.seal("this_is_a_node_secret") != sealed, "a fresh nonce every time")
        // The same file gives the same key; another file cannot open the box.
        #expect(try UpstreamKeySealer.loadOrCreate(path: path).unseal(sealed) == "this_is_a_node_secret")
        let other = try UpstreamKeySealer.loadOrCreate(path: directory + "/other.key")
        #expect(throws: (any Error).self) { try other.unseal(sealed) }
    }

    @Test func theSinkWritesOsqueryBodiesPerNodeAndType() throws {
        func record(_ kind: LogKind, _ node: String, _ json: String, passedThrough: Bool = false) -> LogRecord {
            LogRecord(kind: kind, nodeID: node, hostIdentifier: "h", json: ByteBuffer(string: json), passedThrough: passedThrough)
        }
        let batch = [
            record(.result, "a", #"{"n":1}"#), record(.status, "a", #"{"s":1}"#), record(.result, "b", #"{"n":2}"#),
            record(.result, "a", #"{"n":3}"#),
            record(.distributed, "a", #"{"name":"q1","hostIdentifier":"h","unixTime":1,"status":0,"message":"","stats":{},"rows":[{"x":"1"}]}"#),
            record(.distributed, "a", #"{"name":"q2","hostIdentifier":"h","unixTime":1,"status":1,"message":"no such table","stats":{},"rows":[]}"#),
            record(.distributed, "a", #"{"name":"q1","hostIdentifier":"h","unixTime":2,"status":0,"message":"","stats":{},"rows":[]}"#),
            record(.distributed, "a", #"{"name":"q9","rows":[]}"#, passedThrough: true),
            record(.distributed, "a", #"not json"#),
        ]
        let groups = UpstreamSink.groups(batch)
        #expect(groups.map { "\($0.kind.rawValue):\($0.nodeID):\($0.indices)" } == [
            "result:a:[0, 3]", "status:a:[1]", "result:b:[2]", "distributed:a:[4, 5, 6, 8]",
        ])
        let logger = UpstreamSink.bodies(groups[0], batch, nodeKey: "K")
        #expect(logger.posts.map { String(buffer: $0.buffer) } == [#"{"node_key":"K","log_type":"result","data":[{"n":1},{"n":3}]}"#])
        let distributed = UpstreamSink.bodies(groups[3], batch, nodeKey: "K")
        #expect(distributed.unreadable == [8])
        #expect(distributed.posts.map(\.indices) == [[4, 5], [6]])
        #expect(distributed.posts.map { String(buffer: $0.buffer) } == [
            #"{"queries":{"q1":[{"x":"1"}],"q2":[]},"statuses":{"q1":0,"q2":1},"messages":{"q1":"","q2":"no such table"},"stats":{"q1":{},"q2":{}},"node_key":"K"}"#,
            #"{"queries":{"q1":[]},"statuses":{"q1":0},"messages":{"q1":""},"stats":{"q1":{}},"node_key":"K"}"#,
        ])
    }

    @Test func theSectionReadsEveryKey() throws {
        let directory = makeTemporaryDirectory("upstream-yaml")
        let yaml = """
            tls: { certificate: tls/server.pem, private_key: tls/server.key }
            enrollment: { secrets: [{ name: default, file: secret.txt }] }
            upstream:
              url: https://fleet.internal:8080/
              ca: tls/backend-ca.pem
              timeout: 8s
              pool: { size: 16 }
              endpoints: { enroll: /api/osquery/enroll, config: /api/osquery/config, logger: /api/osquery/log,
                           distributed_read: /api/osquery/distributed/read, distributed_write: /api/osquery/distributed/write,
                           carve_start: /api/osquery/carve/begin, carve_block: /api/osquery/carve/block }
              enroll_secret: { env: BACKEND_SECRET }
              identity_headers: { fingerprint: X-Client-Cert-SHA256, subject: X-Client-Cert-Subject, serial: X-Client-Cert-Serial, sans: X-Client-Cert-SANs }
              refused_key_memory: 1m
              max_concurrent: 32
              max_concurrent_wait: 500ms
              last_good_configs: 5000
            agent_config:
              sources:
                - { name: backend, upstream: true }
            sinks:
              - { name: backend, type: upstream, batch: { max_records: 500 } }
            """
        let configuration = try GatewayConfiguration.parse(yaml: yaml, baseDirectory: directory, environment: [:])
        let upstream = try #require(configuration.upstream)
        #expect(upstream.url("/api/osquery/config") == "https://fleet.internal:8080/api/osquery/config")
        #expect(upstream.endpoint.requestTimeout == .seconds(8))
        #expect(upstream.endpoint.poolIdleTimeout == .seconds(10))
        #expect(upstream.endpoint.poolSize == 16)
        #expect(upstream.endpoint.ca?.hasSuffix("/tls/backend-ca.pem") == true)
        #expect(upstream.endpoints.carveStart == "/api/osquery/carve/begin")
        #expect(upstream.enrollSecret == .environment("BACKEND_SECRET"))
        #expect(upstream.identityHeaders.subjectAlternativeNames == "X-Client-Cert-SANs")
        #expect(upstream.refusedKeyMemory == .seconds(60))
        #expect(upstream.maxConcurrent == 32)
        #expect(upstream.maxConcurrentWait == .milliseconds(500))
        #expect(upstream.lastGoodConfigs == 5000)
        guard case .upstream(let sink) = configuration.sinks[0].kind else { Issue.record("not an upstream sink"); return }
        #expect(sink.batching.maxRecords == 500)
        guard case .upstream = configuration.agentConfig.sources[0].kind else { Issue.record("not an upstream source"); return }
    }

    @Test func upstreamPartsNeedTheSectionAndAShortTimeout() throws {
        let directory = makeTemporaryDirectory("upstream-yaml")
        let missing = """
            tls: { certificate: tls/server.pem, private_key: tls/server.key }
            enrollment: { secrets: [{ name: default, file: secret.txt }] }
            agent_config: { sources: [{ name: backend, upstream: true }] }
            sinks: [{ name: backend, type: upstream }]
            """
        let error = try #require(throws: ConfigurationError.self) {
            try GatewayConfiguration.parse(yaml: missing, baseDirectory: directory, environment: [:])
        }
        #expect(Set(error.problems.map(\.key)) == ["agent_config.sources[0].upstream", "sinks[0].type"])
        let slow = """
            tls: { certificate: tls/server.pem, private_key: tls/server.key }
            upstream: { url: "http://127.0.0.1:1", timeout: 20s, identity_headers: { fingerprint: "Bad Header" } }
            """
        let slowError = try #require(throws: ConfigurationError.self) {
            try GatewayConfiguration.parse(yaml: slow, baseDirectory: directory, environment: [:])
        }
        #expect(Set(slowError.problems.map(\.key)) == ["upstream.timeout", "upstream.identity_headers.fingerprint"])
        let queued = """
            tls: { certificate: tls/server.pem, private_key: tls/server.key }
            upstream: { url: "http://127.0.0.1:1", timeout: 12s, max_concurrent: 0, max_concurrent_wait: 5s }
            """
        let queuedError = try #require(throws: ConfigurationError.self) {
            try GatewayConfiguration.parse(yaml: queued, baseDirectory: directory, environment: [:])
        }
        #expect(Set(queuedError.problems.map(\.key)) == ["upstream.max_concurrent", "upstream.max_concurrent_wait"])
    }
}
