import Foundation
import Sinks
import Support

extension GatewayConfiguration {
    /// Loads everything `serve` would load, without binding a port: every named file, the enroll
    /// secrets, the TLS certificate with its key (and that they belong together), the client CA,
    /// the local config sources and the sinks' CAs and client certificates. `check-config` and
    /// `serve` both run it, so they never disagree.
    ///
    /// HTTP config sources are not fetched (a remote outage must not stop a start).
    /// - Throws: `ConfigurationError` with one sentence per problem, naming the key, line and file.
    func checkServable() async throws {
        var problems: [ConfigurationProblem] = []
        func readable(_ path: String?, _ key: String) {
            guard let path else { return }
            if !FileManager.default.isReadableFile(atPath: path) {
                let why = FileManager.default.fileExists(atPath: path) ? "cannot read" : "no such file:"
                problems.append(problem(key, "\(why) \(path)"))
            }
        }
        readable(tls.certificate, "tls.certificate")
        readable(tls.privateKey, "tls.private_key")
        readable(tls.clientCA, "tls.client_ca")
        for (i, secret) in enrollment.secrets.enumerated() {
            if case .file(let path) = secret.source { readable(path, "enrollment.secrets[\(i)].file") }
        }
        // Files that cannot be read make every later check say the same thing again.
        if !problems.isEmpty { throw ConfigurationError(file: file, problems: problems) }

        do {
            _ = try EnrollSecretVerifier(configuration: enrollment.secrets)
        } catch let error as ConfigurationError {
            problems += error.problems.map { problem($0.key, $0.message) }
        }
        do {
            try TLSMaterial.check(tls, file: file, problem: problem)
        } catch let error as ConfigurationError {
            problems += error.problems
        }
        if case .postgres(let postgres) = nodeStore { problems += postgres.endpoint.problems(at: "node_store", problem) }
        for (i, sink) in sinks.enumerated() {
            switch sink.kind {
            case .http(let http): problems += http.endpoint.problems(at: "sinks[\(i)]", problem)
            case .syslog(let syslog):
                problems += HTTPEndpoint.tlsFileProblems(ca: syslog.ca, clientCertificate: syslog.clientCertificate, at: "sinks[\(i)]", problem)
            case .postgres(let postgres): problems += postgres.endpoint.problems(at: "sinks[\(i)]", problem)
            case .nats(let nats):
                if let tls = nats.tls {
                    problems += HTTPEndpoint.tlsFileProblems(ca: tls.ca, clientCertificate: tls.clientCertificate, at: "sinks[\(i)].tls", problem)
                }
            default: break
            }
            if let endpoint = sink.awsEndpoint { problems += endpoint.problems(at: "sinks[\(i)]", problem) }
        }
        for (i, source) in agentConfig.sources.enumerated() {
            if case .http(let http) = source.kind { problems += http.endpoint.problems(at: "agent_config.sources[\(i)].http", problem) }
        }
        if let adminTLS = admin?.tls {
            let before = problems.count
            readable(adminTLS.certificate, "admin.tls.certificate")
            readable(adminTLS.privateKey, "admin.tls.private_key")
            readable(adminTLS.clientCA, "admin.tls.client_ca")
            if problems.count == before {
                do {
                    try TLSMaterial.check(adminTLS.asAgentTLS, file: file, at: "admin.tls", problem: problem)
                } catch let error as ConfigurationError {
                    problems += error.problems
                }
            }
        }
        if let client = admin?.client {
            problems += HTTPEndpoint.tlsFileProblems(ca: client.ca, clientCertificate: client.clientCertificate, at: "admin.client", problem)
        }
        if let token = admin?.token {
            do {
                _ = try AdminToken(source: token)
            } catch let error as ConfigurationError {
                problems += error.problems.map { problem($0.key, $0.message) }
            }
        }
        if let upstream {
            problems += upstream.endpoint.problems(at: "upstream", problem)
            if let secret = upstream.enrollSecret {
                do {
                    _ = try Upstream.readSecret(secret, environment: ProcessInfo.processInfo.environment)
                } catch let error as ConfigurationError {
                    problems += error.problems.map { problem($0.key, $0.message) }
                }
            }
        }
        for (i, source) in agentConfig.sources.enumerated() {
            let key: String
            let loaded: any ConfigSource
            switch source.kind {
            case .file(let path):
                key = "agent_config.sources[\(i)].file"
                loaded = FileConfigSource(name: source.name, path: path)
            case .directory(let path):
                key = "agent_config.sources[\(i)].directory"
                var isDirectory: ObjCBool = false
                guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue else {
                    problems.append(problem(key, "no such folder: \(path)"))
                    continue
                }
                loaded = DirectoryConfigSource(name: source.name, path: path)
            case .inline, .http, .upstream:
                continue
            }
            do {
                _ = try await loaded.load()
            } catch {
                problems.append(problem(key, "config source \(source.name) cannot be used: \(error)"))
            }
        }
        if !problems.isEmpty { throw ConfigurationError(file: file, problems: problems) }
    }
}
