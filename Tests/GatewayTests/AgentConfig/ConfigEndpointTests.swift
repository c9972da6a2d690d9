import CompressNIO
import Foundation
@testable import Gateway
import Hummingbird
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import ServiceLifecycle
import Support
import Testing

/// The merged config over TLS, as an agent receives it, and HTTP sources against a real HTTP server.
@Suite struct ConfigEndpointTests {
    @Test func agentReceivesTheMergedConfigPlainOrGzip() async throws {
        try await withGateway(configure: { gateway in
            let packs = AgentConfigServiceTests.fixtures + "/osquery-packs"
            gateway.configuration.agentConfig.sources.append(.init(name: "packs", kind: .directory(packs)))
            gateway.configuration.agentConfig.sources.append(.init(name: "extra", kind: .inline(
                try #require(JSONValue(parsing: Array(#"{"schedule":{"uptime":{"query":"SELECT 2;","interval":30}}}"#.utf8)).object))))
        }) { gateway in
            try await gateway.withAgent { agent in
                try await agent.enroll()
                let plain = try await agent.config()
                #expect(plain.outcome == .accepted)
                #expect(plain.headers.first(name: "content-encoding") == nil)
                let config = try #require(plain.json)
                let schedule = try #require(config["schedule"] as? [String: Any])
                #expect(Set(schedule.keys) == ["uptime", "extra_uptime"])
                #expect((config["packs"] as? [String: Any])?.count == 10)
                #expect(plain.body.utf8.count < 1 << 20)

                let zipped = try await agent.post("/config", body: ByteBuffer(string: #"{"node_key":"\#(agent.nodeKey!)"}"#), extraHeaders: [("Accept-Encoding", "gzip")])
                #expect(zipped.headers.first(name: "content-encoding") == "gzip")
                var raw = ByteBuffer(bytes: zipped.rawBody)
                let inflated = try raw.decompress(with: .gzip())
                #expect(String(buffer: inflated) == plain.body)
            }
        }
    }

    @Test func fileChangesArePickedUpWithoutARestart() async throws {
        try await withGateway(configure: { $0.configuration.agentConfig.sources[0].refresh = .milliseconds(100) }) { gateway in
            try await gateway.withAgent { agent in
                try await agent.enroll()
                let before = try await agent.config().body
                try Data(#"{"schedule":{"changed":{"query":"SELECT 3;"}}}"#.utf8)
                    .write(to: URL(fileURLWithPath: gateway.configuration.agentConfig.sources[0].path!))
                var after = before
                for _ in 0..<50 where after == before {
                    try await Task.sleep(for: .milliseconds(100))
                    after = try await agent.config().body
                }
                #expect(after == #"{"schedule":{"changed":{"query":"SELECT 3;"}}}"#)
            }
        }
    }

    @Test func httpSourceServesAndKeepsItsLastGoodContentWhenTheEndpointFails() async throws {
        let failing = NIOLockedValueBox(false)
        let requests = NIOLockedValueBox(0)
        let router = Router()
        router.get("/osquery/config") { request, _ -> Response in
            requests.withLockedValue { $0 += 1 }
            #expect(request.headers[.authorization] == "Bearer vendor-token")
            if failing.withLockedValue({ $0 }) { return Response(status: .internalServerError) }
            return Response(status: .ok, headers: [.contentType: "application/json"],
                            body: .init(byteBuffer: ByteBuffer(string: #"{"options":{"vendor":true}}"#)))
        }
        let portBox = NIOLockedValueBox<CheckedContinuation<Int, Never>?>(nil)
        var logger = Logger(label: "vendor")
        logger.logLevel = .critical
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
                              onServerRunning: { channel in portBox.withLockedValue { $0?.resume(returning: channel.localAddress!.port!); $0 = nil } },
                              logger: logger)
        let group = ServiceGroup(configuration: .init(services: [app], logger: logger))
        let task = Task { try await group.run() }
        let port = await withCheckedContinuation { continuation in portBox.withLockedValue { $0 = continuation } }

        var vendor = HTTPConfigSource.Configuration(url: "http://127.0.0.1:\(port)/osquery/config")
        vendor.endpoint.headers = [("Authorization", "Bearer vendor-token")]
        vendor.endpoint.requestTimeout = .seconds(2)
        let source = try HTTPConfigSource(name: "vendor", configuration: vendor)
        let service = AgentConfigService(sources: [source], targets: [.init(name: "default", match: .init(), sources: ["vendor"])], logger: logger)
        await service.refresh(force: true)
        let node = NodeRecord(id: "n", keyHash: [1], hostKey: nil, hostIdentifier: "h", platformType: "9", hostDetails: "{}",
                              secretName: nil, certificateFingerprint: nil, enrolledAt: Date(), lastSeen: nil)
        #expect(service.config(for: node, certificate: nil).map { String(buffer: $0.json) } == #"{"options":{"vendor":true}}"#)
        failing.withLockedValue { $0 = true }
        await service.refresh(force: true)
        #expect(service.config(for: node, certificate: nil).map { String(buffer: $0.json) } == #"{"options":{"vendor":true}}"#)
        #expect(service.snapshot(target: 0).sources["vendor"]?.error == "http://127.0.0.1:\(port)/osquery/config answered 500")
        #expect(requests.withLockedValue { $0 } == 2)
        await source.shutdown()
        await group.triggerGracefulShutdown()
        try await task.value
    }
}
