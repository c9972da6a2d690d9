import Foundation
import Logging
import NIOConcurrencyHelpers
import Support

/// Checks enroll secrets against every configured one in constant time.
///
/// Secrets are read once at start: from files trimmed (as osquery's `--enroll_secret_path` trims),
/// from environment variables as they are (as `--enroll_secret_env`). An empty configured secret is
/// refused at start, because it would let any agent with no secret enroll.
struct EnrollSecretVerifier: Sendable {
    struct Secret: Sendable {
        var name: String
        var bytes: [UInt8]
        var tags: [String]
    }

    private let secrets: [Secret]

    init(secrets: [Secret]) {
        self.secrets = secrets
    }

    /// Loads the configured secrets.
    /// - Throws: `ConfigurationError` naming the secret that is missing or empty.
    init(configuration: [EnrollmentService.Configuration.Secret], environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        var loaded: [Secret] = []
        var problems: [ConfigurationProblem] = []
        for (i, secret) in configuration.enumerated() {
            let key = "enrollment.secrets[\(i)]"
            let value: String?
            switch secret.source {
            case .file(let path):
                value = (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
                if value == nil { problems.append(.init(key: key + ".file", line: nil, message: "cannot read \(path)")) }
            case .environment(let name):
                value = environment[name]
                if value == nil { problems.append(.init(key: key + ".env", line: nil, message: "environment variable \(name) is not set")) }
            }
            guard let value else { continue }
            if value.isEmpty {
                problems.append(.init(key: key, line: nil, message: "secret \(secret.name) is empty"))
                continue
            }
            loaded.append(Secret(name: secret.name, bytes: Array(value.utf8), tags: secret.tags))
        }
        if !problems.isEmpty { throw ConfigurationError(file: nil, problems: problems) }
        self.secrets = loaded
    }

    /// The secret that `candidate` matches, if any. Every configured secret is compared in full,
    /// whether or not an earlier one matched, so timing does not reveal which one (or how much) matched.
    func match(_ candidate: String) -> Secret? {
        guard !candidate.isEmpty else { return nil }
        let bytes = Array(candidate.utf8)
        var found: Secret?
        for secret in secrets where ConstantTime.equals(secret.bytes, bytes) && found == nil {
            found = secret
        }
        return found
    }
}

/// The enroll secrets in force, replaced as a whole when SIGHUP reloads the configuration file.
final class EnrollSecrets: Sendable {
    private let current: NIOLockedValueBox<EnrollSecretVerifier>

    init(_ verifier: EnrollSecretVerifier) {
        current = NIOLockedValueBox(verifier)
    }

    func match(_ candidate: String) -> EnrollSecretVerifier.Secret? {
        current.withLockedValue { $0 }.match(candidate)
    }

    func replace(with verifier: EnrollSecretVerifier) {
        current.withLockedValue { $0 = verifier }
    }
}
