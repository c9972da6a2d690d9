import Foundation
import Support

/// The bearer token an `/api/` call of the admin listener carries (`admin.token_file` or
/// `admin.token_env`), read once at start; the other credential is an admin client certificate
/// (`AdminCredentials`).
///
/// A token and not a password: it is random (`init` writes 64 hex digits), compared in constant
/// time (`Support/ConstantTime`), and never logged. `/metrics` and `/health` stay open so that
/// Prometheus and load balancers need no secret.
struct AdminToken: Sendable {
    /// Where the token comes from: a file (trimmed at both ends) or an environment variable (as is).
    enum Source: Sendable, Equatable {
        case file(String)
        case environment(String)
    }

    /// The token itself, for the CLI's own calls to the API (never logged).
    let text: String
    private let bytes: [UInt8]

    init(_ value: String) {
        text = value
        bytes = Array(value.utf8)
    }

    /// Reads the token.
    /// - Throws: `ConfigurationError` naming the key when it cannot be read or is empty.
    init(source: Source, environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        let value: String?
        let key: String
        switch source {
        case .file(let path):
            key = "admin.token_file"
            value = (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
            if value == nil { throw ConfigurationError(file: nil, problems: [.init(key: key, line: nil, message: "cannot read \(path)")]) }
        case .environment(let name):
            key = "admin.token_env"
            value = environment[name]
            if value == nil { throw ConfigurationError(file: nil, problems: [.init(key: key, line: nil, message: "environment variable \(name) is not set")]) }
        }
        guard let value, value.count >= 16 else {
            throw ConfigurationError(file: nil, problems: [.init(key: key, line: nil, message: "the admin token must be at least 16 characters")])
        }
        self.init(value)
    }

    /// Whether an `Authorization` header value is `Bearer <this token>`.
    func accepts(authorization: String?) -> Bool {
        guard let authorization else { return false }
        let parts = authorization.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else { return false }
        return ConstantTime.equals(parts[1].trimmingCharacters(in: .whitespaces).utf8, bytes)
    }
}
