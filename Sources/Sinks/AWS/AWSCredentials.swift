import Foundation
import NIOConcurrencyHelpers

/// An AWS access key pair, and the session token that temporary credentials carry.
///
/// Printing one never shows the secret or the token (a sink's configuration is printed when a
/// reload compares old and new, and may end up in a log).
public struct AWSCredentials: Sendable, Equatable, CustomStringConvertible, CustomDebugStringConvertible {
    public var accessKeyID: String
    public var secretAccessKey: String
    /// Set for temporary credentials (STS, SSO, instance roles); sent as `X-Amz-Security-Token`.
    public var sessionToken: String?

    public init(accessKeyID: String, secretAccessKey: String, sessionToken: String? = nil) {
        self.accessKeyID = accessKeyID
        self.secretAccessKey = secretAccessKey
        self.sessionToken = sessionToken
    }

    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and, if set, `AWS_SESSION_TOKEN`; nil unless
    /// both keys are set and not empty.
    public init?(environment: [String: String]) {
        guard let id = environment["AWS_ACCESS_KEY_ID"], !id.isEmpty,
            let secret = environment["AWS_SECRET_ACCESS_KEY"], !secret.isEmpty
        else { return nil }
        let token = environment["AWS_SESSION_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
        self.init(accessKeyID: id, secretAccessKey: secret, sessionToken: token)
    }

    public var description: String {
        "AWSCredentials(\(accessKeyID), secret redacted\(sessionToken == nil ? "" : ", session token redacted"))"
    }
    public var debugDescription: String { description }

    /// Where a sink gets its credentials.
    public enum Source: Sendable, Equatable {
        /// Read once, from the environment when the configuration was read.
        case fixed(AWSCredentials)
        /// A shared-credentials file (`~/.aws/credentials` format), re-read whenever it changes,
        /// so credentials a helper refreshes in place are picked up without a restart.
        case file(path: String, profile: String)
    }

    /// Reads `profile` from a shared-credentials file.
    /// - Throws: `SinkError.io` when the file cannot be read or lacks the profile or its keys.
    public static func load(file path: String, profile: String) throws -> AWSCredentials {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw SinkError.io("cannot read the AWS credentials file \(path)")
        }
        guard let credentials = parse(ini: text, profile: profile) else {
            throw SinkError.io("\(path) has no profile [\(profile)] with aws_access_key_id and aws_secret_access_key")
        }
        return credentials
    }

    /// The keys of section `[profile]` (or `[profile <name>]`, the `~/.aws/config` spelling) of an
    /// INI text: `aws_access_key_id`, `aws_secret_access_key`, `aws_session_token`. Lines starting
    /// with `#` or `;` are comments; key names are case-insensitive.
    static func parse(ini text: String, profile: String) -> AWSCredentials? {
        var section: String?
        var keys: [String: String] = [:]
        for raw in text.split(whereSeparator: \.isNewline) {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") { continue }
            if line.hasPrefix("["), line.hasSuffix("]") {
                var name = line.dropFirst().dropLast().trimmingCharacters(in: .whitespaces)
                if name.hasPrefix("profile ") { name = String(name.dropFirst("profile ".count)).trimmingCharacters(in: .whitespaces) }
                section = name
                continue
            }
            guard section == profile, let equals = line.firstIndex(of: "=") else { continue }
            let key = line[..<equals].trimmingCharacters(in: .whitespaces).lowercased()
            keys[key] = line[line.index(after: equals)...].trimmingCharacters(in: .whitespaces)
        }
        guard let id = keys["aws_access_key_id"], !id.isEmpty, let secret = keys["aws_secret_access_key"], !secret.isEmpty else {
            return nil
        }
        let token = keys["aws_session_token"].flatMap { $0.isEmpty ? nil : $0 }
        return AWSCredentials(accessKeyID: id, secretAccessKey: secret, sessionToken: token)
    }
}

/// Hands out the credentials to sign the next request with: fixed ones, or a file's, read again
/// when its modification time or size changes (a stat per request, a parse per change).
final class AWSCredentialProvider: Sendable {
    private struct Cached: Sendable {
        var modified: Date
        var size: Int
        var credentials: AWSCredentials
    }

    let source: AWSCredentials.Source
    private let cache = NIOLockedValueBox<Cached?>(nil)

    init(_ source: AWSCredentials.Source) {
        self.source = source
    }

    /// - Throws: `SinkError.io` when the file cannot be read or no longer holds the profile.
    func current() throws -> AWSCredentials {
        switch source {
        case .fixed(let credentials):
            return credentials
        case .file(let path, let profile):
            let attributes = try? FileManager.default.attributesOfItem(atPath: path)
            let modified = attributes?[.modificationDate] as? Date ?? .distantPast
            let size = (attributes?[.size] as? NSNumber)?.intValue ?? -1
            if let cached = cache.withLockedValue({ $0 }), cached.modified == modified, cached.size == size {
                return cached.credentials
            }
            let credentials = try AWSCredentials.load(file: path, profile: profile)
            cache.withLockedValue { $0 = Cached(modified: modified, size: size, credentials: credentials) }
            return credentials
        }
    }
}
