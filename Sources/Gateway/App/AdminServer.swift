import Foundation
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import Logging
import NIOCore
import Prometheus
import ServiceLifecycle
import Sinks

/// The operator's side door (`admin.listen`), plain HTTP, or HTTPS with `admin.tls`:
/// - `/api/...`: the admin API (docs/admin-api.md), every call with the bearer token of
///   `admin.token_file` / `admin.token_env` or a client certificate `admin.tls.client_ca`
///   verified (`AdminCredentials`); off (403) without either;
/// - `GET /metrics`: Prometheus text (sinks' delivered/retried/rejected/lag, spool size, config
///   sources' age and state, agent requests by status);
/// - `GET /health`: `{"status": "ok"|"degraded"|"failing", ...}` with every config source, every
///   sink (state, last error, lag) and the spool. `failing` (HTTP 503, so a balancer takes the
///   gateway out) means logs cannot be taken: the spool refused a batch in the last minute, or is
///   past 90% of `spool.max_size`. `degraded` (HTTP 200) means a sink or config source is failing
///   while agents are still served.
enum AdminServer {
    /// The `admin` section.
    struct Configuration: Sendable, Equatable {
        var listen: ListenAddress
        /// Where the admin API's bearer token is read from; nil: no token is accepted.
        var token: AdminToken.Source? = nil
        /// HTTPS, and client certificates as credentials; nil: plain HTTP.
        var tls: AdminTLS.Configuration? = nil
        /// How the CLI on this host reaches the API (its CA, its client certificate).
        var client = AdminClient.Configuration()
    }

    /// - Parameters:
    ///   - tls: serve HTTPS with these files; nil: plain HTTP.
    ///   - registry: nil serves no `/metrics` (tests whose process has another registry).
    /// - Throws: when a TLS file cannot be read (checked before by `checkServable`).
    static func make(
        listen: ListenAddress, tls: AdminTLS.Configuration?, registry: PrometheusCollectorRegistry?, agentConfig: AgentConfigService,
        pipeline: LogPipeline, api: AdminAPI, logger: Logger
    ) throws -> any Service {
        let router = Router(context: AdminRequestContext.self)
        router.add(middleware: AdminAPIMiddleware(credentials: api.credentials))
        api.register(on: router)
        if let registry {
            router.get("/metrics") { _, _ -> Response in
                Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                         body: .init(byteBuffer: ByteBuffer(bytes: registry.emitToBuffer())))
            }
        }
        router.get("/health") { _, _ -> Response in
            let (failing, body) = health(agentConfig: agentConfig, pipeline: pipeline)
            return Response(status: failing ? .serviceUnavailable : .ok, headers: [.contentType: "application/json"],
                            body: .init(byteBuffer: ByteBuffer(bytes: JSONValue.object(body).canonicalJSON())))
        }
        let server: HTTPServerBuilder
        if let tls {
            server = try .tls(.http1(), tlsConfiguration: try AdminTLS.serverConfiguration(tls))
        } else {
            server = .http1()
        }
        return Application(
            router: router, server: server, configuration: .init(address: .hostname(listen.host, port: listen.port)), logger: logger)
    }

    /// The `/health` body, and whether the gateway cannot take logs.
    static func health(agentConfig: AgentConfigService, pipeline: LogPipeline, now: Date = Date()) -> (failing: Bool, body: JSONObject) {
        var degraded = false
        let sources = agentConfig.snapshot(target: 0).sources
        var sourceStates = JSONObject()
        for source in agentConfig.sources {
            let status = sources[source.name]
            var entry = JSONObject()
            entry["loaded"] = .bool(status?.loadedAt != nil)
            if let error = status?.error {
                entry["error"] = .string(error)
                degraded = true
            }
            sourceStates[source.name] = .object(entry)
        }
        var sinkStates = JSONObject()
        for worker in pipeline.workers {
            let status = worker.status
            var entry = JSONObject()
            entry["state"] = .string(status.state.rawValue)
            entry["lag_bytes"] = .number(String(status.lagBytes))
            entry["lag_seconds"] = .number(String(Int(status.lagSeconds)))
            if let error = status.lastError, let at = status.lastErrorAt {
                entry["last_error"] = .string(error)
                entry["last_error_seconds_ago"] = .number(String(Int(now.timeIntervalSince(at))))
            }
            if status.state != .ok { degraded = true }
            sinkStates[worker.sink.name] = .object(entry)
        }
        let spool = pipeline.spool
        let unsent = spool.unsentSize
        var spoolState = JSONObject()
        spoolState["bytes"] = .number(String(spool.size))
        spoolState["unsent_bytes"] = .number(String(unsent))
        spoolState["max_bytes"] = .number(String(spool.configuration.maxSize))
        var failing = unsent * 10 > spool.configuration.maxSize * 9
        if let refusal = pipeline.lastRefusal, now.timeIntervalSince(refusal.at) < 60 {
            failing = true
            spoolState["last_refusal"] = .string(refusal.reason)
            spoolState["last_refusal_seconds_ago"] = .number(String(Int(now.timeIntervalSince(refusal.at))))
        }
        var body = JSONObject()
        body["status"] = .string(failing ? "failing" : degraded ? "degraded" : "ok")
        body["config_sources"] = .object(sourceStates)
        body["sinks"] = .object(sinkStates)
        body["spool"] = .object(spoolState)
        body["spool_bytes"] = .number(String(spool.size))
        return (failing, body)
    }
}

extension AdminServer.Configuration {
    /// `admin`: `listen`, where `/metrics`, `/health` and the admin API are served; `token_file`
    /// (trimmed) or `token_env`, the admin API's bearer token; `tls` (`AdminTLS.Configuration`),
    /// HTTPS and client certificates; `client` (`AdminClient.Configuration`), how the CLI connects.
    init?(reading section: MappingReader) {
        let file = section.configPath("token_file")
        let env = section.string("token_env")
        let tls = section.section("tls") { AdminTLS.Configuration(reading: $0) } ?? nil
        let client = section.section("client") { AdminClient.Configuration(reading: $0) } ?? AdminClient.Configuration()
        guard let listen = section.listenAddress("listen", example: "127.0.0.1:9443") else { return nil }
        let token: AdminToken.Source?
        switch (file, env) {
        case (let file?, nil): token = .file(file)
        case (nil, let env?): token = .environment(env)
        case (nil, nil): token = nil
        case (_?, _?):
            section.reader.report(section.path, section.node, "give at most one of token_file or token_env")
            return nil
        }
        self.init(listen: listen, token: token, tls: tls, client: client)
    }
}
