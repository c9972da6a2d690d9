import Foundation
import Sinks
import Support
@testable import Gateway

/// The backend's secret, as `upstream.enroll_secret` names it.
let backendSecret = "backend-secret"

/// Runs `body` against a gateway in front of `backend` (started first): the backend's config merged
/// after the local base config, the file sink first and the upstream sink second, identity headers
/// on, and a 5 s request timeout: failures are quick, and a loaded 2-core test run still gets its answers.
func withUpstreamGateway(
    _ backend: TestBackend,
    clientCertificates: AgentTLS.ClientCertificateMode = .optional,
    configure: (TestGateway) throws -> Void = { _ in },
    _ body: (TestGateway) async throws -> Void
) async throws {
    try await withGateway(clientCertificates: clientCertificates, configure: { gateway in
        try frontBackend(backend, with: gateway)
        try configure(gateway)
    }, body)
}

/// Makes `gateway` (not started yet) front `backend`, as `withUpstreamGateway` describes.
func frontBackend(_ backend: TestBackend, with gateway: TestGateway) throws {
    let secretFile = gateway.directory + "/backend_secret.txt"
    try Data((backendSecret + "\n").utf8).write(to: URL(fileURLWithPath: secretFile))
    var upstream = Upstream.Configuration(url: backend.url)
    let paths = TestBackend.paths
    upstream.endpoints = OsqueryEndpoints(
        enroll: paths.enroll, config: paths.config, logger: paths.logger, distributedRead: paths.distributedRead,
        distributedWrite: paths.distributedWrite, carveStart: paths.carveStart, carveBlock: paths.carveBlock)
    upstream.endpoint.requestTimeout = .seconds(5)
    upstream.endpoint.connectTimeout = .seconds(3)
    upstream.enrollSecret = .file(secretFile)
    upstream.identityHeaders = .init(
        fingerprint: "X-Client-Cert-SHA256", subject: "X-Client-Cert-Subject", serial: "X-Client-Cert-Serial",
        subjectAlternativeNames: "X-Client-Cert-SANs")
    gateway.configuration.upstream = upstream
    gateway.configuration.agentConfig.sources.append(.init(name: "backend", kind: .upstream))
    var sink = UpstreamSink.Configuration(name: "backend")
    sink.batching.maxWait = .zero
    gateway.configuration.sinks.append(SinkConfiguration(name: "backend", kind: .upstream(sink)))
}

/// Runs `body` with `backend` (by default plain HTTP) started, and always stops it.
func withBackend(_ backend: TestBackend = TestBackend(), _ body: (TestBackend) async throws -> Void) async throws {
    try await backend.start()
    do {
        try await body(backend)
    } catch {
        await backend.stop()
        throw error
    }
    await backend.stop()
}

extension TestGateway {
    /// Lines of the dead-letter file of `sink`, waiting up to `timeout` for `count` of them.
    func waitForDeadLetters(_ sink: String, count: Int, timeout: Duration = .seconds(10)) async -> [String] {
        let path = configuration.dataDir + "/deadletter/\(sink).jsonl"
        let deadline = ContinuousClock.now + timeout
        func lines() -> [String] {
            guard let data = FileManager.default.contents(atPath: path) else { return [] }
            return String(decoding: data, as: UTF8.self).split(separator: "\n").map(String.init)
        }
        var found = lines()
        while found.count < count && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20))
            found = lines()
        }
        return found
    }
}

/// The config a node gets from the base source and the test backend, as agents receive it.
let mergedConfig = #"{"options":{"distributed_interval":10,"logger_tls_period":5},"schedule":{"backend_processes":{"interval":30,"query":"SELECT * FROM processes;"},"uptime":{"interval":60,"query":"SELECT * FROM uptime;"}}}"#
/// The base source alone.
let localConfig = #"{"options":{"logger_tls_period":5},"schedule":{"uptime":{"interval":60,"query":"SELECT * FROM uptime;"}}}"#
