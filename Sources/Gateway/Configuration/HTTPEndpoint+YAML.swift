import Foundation
import NIOHTTP1
import NIOSSL
import Support

extension HTTPEndpoint {
    /// Reads an outbound-HTTP endpoint from `section`, the same keys wherever one is configured
    /// (an `http` sink, an `http` config source, the upstream backend):
    ///
    /// `url`, `method` (only where `methods` allows a choice), `headers` (a mapping), `auth`
    /// (`header`, `prefix`, and one of `env` or `file`: the secret is read now and sent as that
    /// header), `ca`, `client_certificate` with `client_key`, `timeout` (the whole request),
    /// `connect_timeout`, and `pool` (`size`, `idle_timeout`). `timeout` and `idleTimeout` are the
    /// defaults of the whole request and of the pool's idle timeout.
    init?(reading section: MappingReader, method: HTTPMethod, methods: [HTTPMethod] = [], timeout: Duration,
          idleTimeout: Duration = .seconds(60)) {
        let reader = section.reader
        let url = section.requiredString("url")
        self.init(url: url ?? "", method: method)
        poolIdleTimeout = idleTimeout
        if let url, !url.hasPrefix("http://"), !url.hasPrefix("https://") {
            reader.report(section.key("url"), section.value("url"), "must start with http:// or https://")
        }
        if !methods.isEmpty, let text = section.string("method") {
            if let chosen = methods.first(where: { "\($0)" == text.uppercased() }) {
                self.method = chosen
            } else {
                reader.report(section.key("method"), section.value("method"), "expected \(methods.map { "\($0)" }.joined(separator: " or "))")
            }
        }
        if let headers = section.mapping("headers") {
            for key in headers.keys { if let value = headers.string(key) { self.headers.append((key, value)) } }
            headers.finish()
        }
        if let auth = section.section("auth", { Self.authHeader(reading: $0) }), let auth {
            headers.append(auth)
        }
        ca = section.configPath("ca")
        let certificate = section.configPath("client_certificate")
        let key = section.configPath("client_key")
        if let certificate, let key { clientCertificate = .init(certificate: certificate, privateKey: key) }
        if (certificate == nil) != (key == nil) {
            reader.report(section.key("client_key"), section.node, "client_certificate and client_key go together")
        }
        requestTimeout = section.duration("timeout", minimum: .milliseconds(1)) ?? timeout
        if let value = section.duration("connect_timeout", minimum: .milliseconds(1)) { connectTimeout = value }
        if let pool = section.mapping("pool") {
            if let value = pool.integer("size", in: 1...1_000) { poolSize = value }
            if let value = pool.duration("idle_timeout", minimum: .seconds(1)) { poolIdleTimeout = value }
            pool.finish()
        }
        guard url != nil else { return nil }
    }

    /// `auth`: the header (default `Authorization`), a prefix such as `Bearer `, and the secret from
    /// exactly one of an environment variable or a file (trimmed).
    private static func authHeader(reading auth: MappingReader) -> (name: String, value: String)? {
        let reader = auth.reader
        let header = auth.string("header") ?? "Authorization"
        let prefix = auth.string("prefix") ?? ""
        switch (auth.string("env"), auth.configPath("file")) {
        case (let env?, nil):
            guard let value = reader.environment[env] else {
                reader.report(auth.key("env"), auth.value("env"), "environment variable \(env) is not set")
                return nil
            }
            return (header, prefix + value)
        case (nil, let path?):
            guard let value = try? String(contentsOfFile: path, encoding: .utf8) else {
                reader.report(auth.key("file"), auth.value("file"), "cannot read \(path)")
                return nil
            }
            return (header, prefix + value.trimmingCharacters(in: .whitespacesAndNewlines))
        default:
            reader.report(auth.path, auth.node, "give exactly one of env or file")
            return nil
        }
    }

    /// The endpoint's CA, certificate and key exist, are readable and hold PEM data; `prefix` is the
    /// key of the section it was read from (`sinks[2]`), for the problem's key.
    func problems(at prefix: String, _ problem: (String, String) -> ConfigurationProblem) -> [ConfigurationProblem] {
        Self.tlsFileProblems(ca: ca, clientCertificate: clientCertificate, at: prefix, problem)
    }

    /// The same checks for any outbound TLS settings read with the same keys (`ca`,
    /// `client_certificate`, `client_key`), such as a syslog sink's.
    static func tlsFileProblems(
        ca: String?, clientCertificate: ClientCertificate?, at prefix: String, _ problem: (String, String) -> ConfigurationProblem
    ) -> [ConfigurationProblem] {
        var problems: [ConfigurationProblem] = []
        if let ca, (try? NIOSSLCertificate.fromPEMFile(ca)) == nil {
            problems.append(problem("\(prefix).ca", Self.unreadable(ca) ?? "\(ca) is not a PEM certificate bundle"))
        }
        if let pair = clientCertificate {
            if (try? NIOSSLCertificate.fromPEMFile(pair.certificate)) == nil {
                problems.append(problem("\(prefix).client_certificate", Self.unreadable(pair.certificate) ?? "\(pair.certificate) is not a PEM certificate"))
            }
            if (try? NIOSSLPrivateKey(file: pair.privateKey, format: .pem)) == nil {
                problems.append(problem("\(prefix).client_key", Self.unreadable(pair.privateKey) ?? "\(pair.privateKey) is not a PEM private key"))
            }
        }
        return problems
    }

    private static func unreadable(_ path: String) -> String? {
        if FileManager.default.isReadableFile(atPath: path) { return nil }
        return FileManager.default.fileExists(atPath: path) ? "cannot read \(path)" : "no such file: \(path)"
    }
}
