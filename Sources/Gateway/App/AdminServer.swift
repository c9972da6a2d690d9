import Hummingbird
import Logging
import NIOCore
import Prometheus
import ServiceLifecycle
import Sinks

/// The operator's side door, plain HTTP on a local address (`admin.listen`):
/// - `GET /metrics`: Prometheus text (sinks' delivered/retried/rejected/lag, spool size, config
///   sources' age and state, agent requests by status);
/// - `GET /health`: `{"status":"ok"|"degraded", ...}` with every config source's state.
enum AdminServer {
    static func make(
        listen: GatewayConfiguration.Listen, registry: PrometheusCollectorRegistry, agentConfig: AgentConfigService,
        pipeline: LogPipeline, logger: Logger
    ) -> any Service {
        let router = Router()
        router.get("/metrics") { _, _ -> Response in
            Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                     body: .init(byteBuffer: ByteBuffer(bytes: registry.emitToBuffer())))
        }
        router.get("/health") { _, _ -> Response in
            let sources = agentConfig.snapshot(target: 0).sources
            var states = JSONObject()
            var degraded = false
            for source in agentConfig.sources {
                let status = sources[source.name]
                var entry = JSONObject()
                entry["loaded"] = .bool(status?.loadedAt != nil)
                if let error = status?.error {
                    entry["error"] = .string(error)
                    degraded = true
                }
                states[source.name] = .object(entry)
            }
            var body = JSONObject()
            body["status"] = .string(degraded ? "degraded" : "ok")
            body["config_sources"] = .object(states)
            body["spool_bytes"] = .number(String(pipeline.spool.size))
            return Response(status: .ok, headers: [.contentType: "application/json"],
                            body: .init(byteBuffer: ByteBuffer(bytes: JSONValue.object(body).canonicalJSON())))
        }
        return Application(router: router, configuration: .init(address: .hostname(listen.host, port: listen.port)), logger: logger)
    }
}
