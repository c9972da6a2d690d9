import Foundation
import Support

/// Which sources a node gets: `agent_config.targets`, first match wins, then the default.
struct AgentConfigTarget: Sendable {
    /// Conditions that must all hold; an absent condition always holds.
    struct Match: Sendable {
        /// osquery platform names (`linux`, `darwin`, `windows`, `freebsd`, `posix`) or the
        /// `os_version.platform` value (`ubuntu`, `debian`, `rhel`, ...).
        var platforms: [String] = []
        /// Globs over the host identifier (`*` and `?`).
        var hostIdentifiers: [String] = []
        /// Enroll secret names.
        var secrets: [String] = []
        /// Globs over the client certificate's subject, common name and DNS SANs.
        var certificates: [String] = []
        /// osquery version range, such as `>=5.10.0` or `>=5.0.0 <5.12.0`.
        var versions: VersionRange?
        /// Node tags (from the enroll secret); all must be present.
        var tags: [String] = []
    }

    var name: String
    var match: Match
    var sources: [String]

    func matches(_ facts: NodeFacts) -> Bool {
        if !match.platforms.isEmpty, !match.platforms.contains(where: facts.platforms.contains) { return false }
        if !match.hostIdentifiers.isEmpty, !match.hostIdentifiers.contains(where: { Glob.matches($0, facts.hostIdentifier) }) { return false }
        if !match.secrets.isEmpty, !match.secrets.contains(where: { $0 == facts.secretName }) { return false }
        if !match.certificates.isEmpty {
            guard !facts.certificateNames.isEmpty,
                match.certificates.contains(where: { pattern in facts.certificateNames.contains { Glob.matches(pattern, $0) } })
            else { return false }
        }
        if let versions = match.versions {
            guard let version = facts.osqueryVersion, versions.contains(version) else { return false }
        }
        if !match.tags.allSatisfy(facts.tags.contains) { return false }
        return true
    }
}

/// What targeting knows about a node, worked out once per node from its enrollment.
struct NodeFacts: Sendable, Equatable {
    var hostIdentifier: String
    var platforms: Set<String>
    var secretName: String?
    var tags: Set<String>
    var certificateNames: [String]
    var osqueryVersion: [Int]?
}

extension NodeFacts {
    /// Facts from a node's enrollment and its connection's certificate.
    init(hostIdentifier: String, platformType: String, hostDetails: String, secretName: String?, tags: [String], certificate: PeerCertificate?) {
        self.init(
            hostIdentifier: hostIdentifier, platformType: platformType, hostDetails: hostDetails, secretName: secretName, tags: tags,
            certificateNames: certificate?.names ?? [])
    }

    /// Facts from a stored node alone (campaign targeting, with no connection at hand): the
    /// certificate names are those it enrolled with.
    init(node: NodeRecord, tags: [String]) {
        self.init(
            hostIdentifier: node.hostIdentifier, platformType: node.platformType, hostDetails: node.hostDetails,
            secretName: node.secretName, tags: tags, certificateNames: node.certificateNames)
    }

    /// Facts from a node's enrollment and certificate names (`PeerCertificate.names`).
    init(hostIdentifier: String, platformType: String, hostDetails: String, secretName: String?, tags: [String], certificateNames: [String]) {
        self.hostIdentifier = hostIdentifier
        self.secretName = secretName
        self.tags = Set(tags)
        self.certificateNames = certificateNames
        var platforms = Set(OsqueryPlatform.names(platformType: platformType))
        let details = try? JSONValue(parsing: Array(hostDetails.utf8))
        if let platform = details?["os_version"]?["platform"]?.string, !platform.isEmpty { platforms.insert(platform) }
        if let like = details?["os_version"]?["platform_like"]?.string {
            for name in like.split(separator: " ") { platforms.insert(String(name)) }
        }
        self.platforms = platforms
        osqueryVersion = details?["osquery_info"]?["version"]?.string.flatMap(VersionRange.parseVersion)
    }
}

/// `>=5.10.0 <5.12` style ranges over dotted versions.
struct VersionRange: Sendable, Equatable {
    enum Operator: String, Sendable { case ge = ">=", gt = ">", le = "<=", lt = "<", eq = "=" }
    var bounds: [(Operator, [Int])]

    static func == (lhs: VersionRange, rhs: VersionRange) -> Bool {
        lhs.bounds.count == rhs.bounds.count && zip(lhs.bounds, rhs.bounds).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
    }

    init?(_ text: String) {
        var bounds: [(Operator, [Int])] = []
        for part in text.split(separator: " ") where !part.isEmpty {
            let op: Operator
            var rest = Substring(part)
            if rest.hasPrefix(">=") { op = .ge; rest = rest.dropFirst(2) }
            else if rest.hasPrefix("<=") { op = .le; rest = rest.dropFirst(2) }
            else if rest.hasPrefix(">") { op = .gt; rest = rest.dropFirst() }
            else if rest.hasPrefix("<") { op = .lt; rest = rest.dropFirst() }
            else if rest.hasPrefix("=") { op = .eq; rest = rest.dropFirst() }
            else { op = .eq }
            guard let version = Self.parseVersion(String(rest)) else { return nil }
            bounds.append((op, version))
        }
        guard !bounds.isEmpty else { return nil }
        self.bounds = bounds
    }

    static func parseVersion(_ text: String) -> [Int]? {
        let core = text.split(separator: "-").first.map(String.init) ?? text
        let parts = core.split(separator: ".").map { Int($0) }
        guard !parts.isEmpty, parts.allSatisfy({ $0 != nil }) else { return nil }
        return parts.map { $0! }
    }

    func contains(_ version: [Int]) -> Bool {
        bounds.allSatisfy { op, bound in
            let order = Self.compare(version, bound)
            switch op {
            case .ge: return order >= 0
            case .gt: return order > 0
            case .le: return order <= 0
            case .lt: return order < 0
            case .eq: return order == 0
            }
        }
    }

    static func compare(_ a: [Int], _ b: [Int]) -> Int {
        for i in 0..<max(a.count, b.count) {
            let x = i < a.count ? a[i] : 0
            let y = i < b.count ? b[i] : 0
            if x != y { return x < y ? -1 : 1 }
        }
        return 0
    }
}
