import AsyncHTTPClient
import Foundation
import Metrics
import NIOCore
import Prometheus
import Testing
@testable import Gateway
import Sinks
import Logging

/// One metrics registry for the test process (the metrics system can be bootstrapped once).
let testMetrics: PrometheusCollectorRegistry = {
    let registry = PrometheusCollectorRegistry()
    MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
    return registry
}()

@Suite struct AdminTests {
    @Test func healthAndPrometheusMetricsOnTheAdminListener() async throws {
        let port = freeLoopbackPort()
        let gateway = try TestGateway()
        gateway.configuration.admin = .init(listen: .init(host: "127.0.0.1", port: port))
        try await gateway.start(metrics: testMetrics)
        try await gateway.withAgent { agent in
            try await agent.enroll()
            _ = try await agent.log("result", [resultItem("q", host: agent.hostIdentifier, columns: ["a": "1"])])
        }
        _ = await gateway.waitForLines("osqueryd.results.log", count: 1)
        let client = HTTPClient(eventLoopGroupProvider: .singleton)
        func get(_ path: String) async throws -> String {
            let response = try await client.execute(HTTPClientRequest(url: "http://127.0.0.1:\(port)\(path)"), timeout: .seconds(5))
            return String(buffer: try await response.body.collect(upTo: 1 << 20))
        }
        // The line is in the file a moment before the sink's cursor is saved past it.
        var health = try await get("/health")
        for _ in 0..<100 where !health.contains(#""unsent_bytes":0}"#) {
            try await Task.sleep(for: .milliseconds(50))
            health = try await get("/health")
        }
        #expect(health.hasPrefix(#"{"config_sources":{"base":{"loaded":true}},"sinks":{"files":{"lag_bytes":0,"lag_seconds":0,"state":"ok"}},"spool":{"bytes":"#),
                "\(health)")
        #expect(health.contains(#","max_bytes":1073741824,"unsent_bytes":0},"spool_bytes":"#))
        #expect(health.hasSuffix(#","status":"ok"}"#))
        let metrics = try await get("/metrics")
        #expect(metrics.contains(#"sink_delivered_records{sink="files"}"#))
        #expect(metrics.contains(#"config_source_up{source="base"}"#) || metrics.contains("spool_appended_records"))
        #expect(metrics.contains("gateway_requests"))
        try await client.shutdown()
        try await gateway.stop()
    }
}

/// `/health` says `failing` (503) while logs cannot be taken, and names the failing sink.
@Suite struct HealthTests {
    @Test func healthFailsWhileTheSpoolRefusesBatches() async throws {
        let gateway = try TestGateway()
        let configuration = gateway.configuration
        let pipeline = try LogPipeline.make(
            spool: configuration.spool, sinks: configuration.sinks, deadLetterDirectory: configuration.dataDir + "/deadletter",
            logger: .init(label: "health"))
        let agentConfig = try AgentConfigService(
            configuration: configuration.agentConfig, tagsBySecret: configuration.tagsBySecret, logger: .init(label: "health"))
        await agentConfig.refresh(force: true)
        #expect(AdminServer.health(agentConfig: agentConfig, pipeline: pipeline).failing == false)
        pipeline.spool.close()
        await #expect(throws: (any Error).self) {
            try await pipeline.append([LogRecord(kind: .result, nodeID: "n", hostIdentifier: "h", json: ByteBuffer(string: "{}"))])
        }
        let (failing, body) = AdminServer.health(agentConfig: agentConfig, pipeline: pipeline)
        #expect(failing)
        #expect(body["status"]?.string == "failing")
        #expect(body["spool"]?["last_refusal"]?.string == "log pipeline is shut down")
        await pipeline.close()
    }
}
