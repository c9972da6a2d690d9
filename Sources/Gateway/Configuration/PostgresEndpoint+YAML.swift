import Foundation
import Support

extension PostgresEndpoint {
    /// Reads a PostgreSQL database from `section`, the same keys wherever one is configured (the
    /// node store, a `postgres` sink):
    ///
    /// `urlKey` (`postgres://user[:password]@host[:port]/database`, required; `${NAME}` puts a
    /// password from the environment in it), `password_file` (the password, trimmed, instead of one
    /// in the URL), `tls` (`disable`, `prefer`, `require`; default `require` with a `ca`, else
    /// `prefer`), `ca` (PEM bundle the server's certificate must chain to), `connect_timeout`,
    /// `timeout` (one query or batch; default `timeout`), `statement_timeout` (the server's limit on
    /// one statement, sent when each connection starts; default the `timeout`, `0s` sends none, for
    /// a pooler that refuses it) and `pool_size` (default 8).
    init?(reading section: MappingReader, urlKey: String, timeout: Duration) {
        let reader = section.reader
        let url = section.requiredString(urlKey)
        let passwordFile = section.configPath("password_file")
        let tls = section.choice("tls", TLSMode.self)
        let ca = section.configPath("ca")
        let connectTimeout = section.duration("connect_timeout", minimum: .milliseconds(1))
        let queryTimeout = section.duration("timeout", minimum: .milliseconds(1))
        let statementTimeout = section.duration("statement_timeout")
        let poolSize = section.integer("pool_size", in: 1...1_000)
        guard let url else { return nil }
        do {
            try self.init(url: url)
        } catch {
            reader.report(section.key(urlKey), section.value(urlKey), "\(error)")
            return nil
        }
        if let passwordFile {
            if password != nil {
                reader.report(section.key("password_file"), section.value("password_file"), "give the password in the URL or in password_file, not both")
            }
            guard let text = try? String(contentsOfFile: passwordFile, encoding: .utf8) else {
                reader.report(section.key("password_file"), section.value("password_file"), "cannot read \(passwordFile)")
                return nil
            }
            password = text.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        if ca != nil && tls == .disable {
            reader.report(section.key("ca"), section.value("ca"), "is for TLS, but tls is disable")
        }
        self.tls = tls ?? (ca != nil ? .require : .prefer)
        self.ca = ca
        self.queryTimeout = queryTimeout ?? timeout
        self.statementTimeout = statementTimeout
        if let connectTimeout { self.connectTimeout = connectTimeout }
        if let poolSize { self.poolSize = poolSize }
    }

    /// The CA file exists and holds PEM data; `prefix` is the key of the section it was read from.
    func problems(at prefix: String, _ problem: (String, String) -> ConfigurationProblem) -> [ConfigurationProblem] {
        guard let ca else { return [] }
        guard FileManager.default.isReadableFile(atPath: ca) else {
            return [problem("\(prefix).ca", FileManager.default.fileExists(atPath: ca) ? "cannot read \(ca)" : "no such file: \(ca)")]
        }
        guard let text = try? String(contentsOfFile: ca, encoding: .utf8), text.contains("-----BEGIN CERTIFICATE-----") else {
            return [problem("\(prefix).ca", "\(ca) is not a PEM certificate bundle")]
        }
        return []
    }
}
