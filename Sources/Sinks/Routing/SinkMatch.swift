import Support

/// Which records a sink takes: every condition given must hold; none given means everything.
public struct SinkMatch: Sendable, Equatable {
    /// `result`, `status`, `distributed`.
    public var logTypes: [LogKind] = []
    /// Globs over the query name (`pack_detections_*`).
    public var queries: [String] = []
    /// Enroll secret names.
    public var secrets: [String] = []
    /// Platforms (`linux`, `darwin`, `windows`, ...).
    public var platforms: [String] = []

    public init(logTypes: [LogKind] = [], queries: [String] = [], secrets: [String] = [], platforms: [String] = []) {
        self.logTypes = logTypes
        self.queries = queries
        self.secrets = secrets
        self.platforms = platforms
    }

    public var matchesEverything: Bool { logTypes.isEmpty && queries.isEmpty && secrets.isEmpty && platforms.isEmpty }

    public func matches(_ record: LogRecord) -> Bool {
        if !logTypes.isEmpty && !logTypes.contains(record.kind) { return false }
        if !queries.isEmpty {
            guard let name = record.queryName, queries.contains(where: { Glob.matches($0, name) }) else { return false }
        }
        if !secrets.isEmpty {
            guard let secret = record.secretName, secrets.contains(secret) else { return false }
        }
        if !platforms.isEmpty {
            guard let platform = record.platform, platforms.contains(platform) else { return false }
        }
        return true
    }
}
