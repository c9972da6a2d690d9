import Foundation
import Logging
import Support

/// The osquery backend the gateway stands in front of (issue 10; the design is docs/upstream.md).
///
/// One value per running gateway, made from the `upstream` section: the client, the sealing key,
/// and the backend's enroll secret. The parts that use it are each in their own file:
/// - `UpstreamEnrollment`: enrollments go to the backend; the agent gets the gateway's own key and
///   the backend's is kept sealed with the node;
/// - `UpstreamKeyLearner`: a key the gateway has never seen is checked with the backend once and
///   learned, so agents enrolled there before keep working;
/// - `UpstreamNodes`: a node's backend key, and revoking a node the backend refused;
/// - `UpstreamConfig`: the backend's config for each node merged with the local sources;
/// - `UpstreamPassThrough`: distributed read and write and carving, passed through synchronously;
/// - `UpstreamSink`: logs re-posted to the backend from the spool.
final class Upstream: Sendable {
    let configuration: Configuration
    let client: UpstreamClient
    let sealer: UpstreamKeySealer
    /// What the backend expects as enroll secret; nil: the agent's own is passed on.
    let backendSecret: String?
    let logger: Logger

    /// `url` without a user or password, for logs.
    static func withoutCredentials(_ url: String) -> String {
        guard var components = URLComponents(string: url), components.user != nil || components.password != nil else { return url }
        components.user = nil
        components.password = nil
        return components.string ?? "(url)"
    }

    /// The key file in `dataDir` (docs/upstream.md#sealed-keys).
    static func keyFile(dataDir: String) -> String { dataDir + "/upstream.key" }

    /// Reads the backend's enroll secret and the sealing key (created on first use), makes the client.
    /// - Throws: `ConfigurationError` for a secret that cannot be read or is empty; the key file's or
    ///   the client's error otherwise.
    init(configuration: Configuration, dataDir: String, logger: Logger,
         environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        self.configuration = configuration
        var logger = logger
        logger[metadataKey: "gw.upstream"] = "\(Self.withoutCredentials(configuration.endpoint.url))"
        self.logger = logger
        backendSecret = try configuration.enrollSecret.map { try Self.readSecret($0, environment: environment) }
        sealer = try UpstreamKeySealer.loadOrCreate(path: Self.keyFile(dataDir: dataDir))
        client = try UpstreamClient(configuration: configuration)
    }

    /// A secret from a file (trimmed, as osquery's `--enroll_secret_path`) or a variable (as is).
    static func readSecret(_ source: EnrollmentService.Configuration.Secret.Source, environment: [String: String]) throws -> String {
        let value: String?
        let key: String
        switch source {
        case .file(let path):
            key = "upstream.enroll_secret.file"
            value = (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
            if value == nil { throw ConfigurationError(file: nil, problems: [.init(key: key, line: nil, message: "cannot read \(path)")]) }
        case .environment(let name):
            key = "upstream.enroll_secret.env"
            value = environment[name]
            if value == nil { throw ConfigurationError(file: nil, problems: [.init(key: key, line: nil, message: "environment variable \(name) is not set")]) }
        }
        guard let value, !value.isEmpty else {
            throw ConfigurationError(file: nil, problems: [.init(key: key, line: nil, message: "the backend's enroll secret is empty")])
        }
        return value
    }

    func shutdown() async {
        await client.shutdown()
    }
}
