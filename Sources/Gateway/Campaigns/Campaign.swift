import Foundation
import Support

/// A live query: SQL asked of a set of nodes fixed when it starts, until it expires or is cancelled.
///
/// The targeted nodes are resolved once, at creation, so the campaign knows exactly who never
/// answered (the partial-answer complaint about Fleet); a node that enrolls later is not asked.
struct Campaign: Sendable, Equatable {
    /// Campaign ids carry this prefix, so a distributed write tells the gateway's own queries from
    /// an upstream backend's (docs/upstream.md).
    static let idPrefix = "gw-"
    /// When a campaign expires unless it says otherwise.
    static let defaultLifetime: Duration = .seconds(600)

    var id: String
    var name: String?
    var sql: String
    var target: CampaignTarget
    var createdAt: Date
    var expiresAt: Date
    var cancelledAt: Date? = nil

    static func newID() -> String { idPrefix + UUID().uuidString.lowercased() }

    /// Whether nodes are still asked and answers still taken.
    func isActive(at now: Date) -> Bool { cancelledAt == nil && now < expiresAt }

    /// The name sinks see as the `distributed` records' query name: the campaign's name when it is
    /// a simple one (letters, digits, `_ - . :`), else its id.
    var queryName: String {
        guard let name, !name.isEmpty, name.utf8.count <= 128,
            name.unicodeScalars.allSatisfy({ CharacterSet.alphanumerics.contains($0) || "_-.:".unicodeScalars.contains($0) })
        else { return id }
        return name
    }
}

/// Which nodes a campaign asks: every node, or those with one of `nodeIDs`, or those matching the
/// conditions, which are the node facts of config targeting (`AgentConfigTarget.Match`, the one
/// matcher): host-identifier globs, platforms, enroll-secret names, tags, an osquery version range
/// and certificate-name globs. Every condition given must hold; `all` and `nodeIDs` add nodes.
/// Revoked nodes are never asked.
struct CampaignTarget: Sendable, Equatable {
    var all = false
    var nodeIDs: [String] = []
    /// Globs over the host identifier (`*`, `?`).
    var hosts: [String] = []
    /// osquery platform names or `os_version.platform` values, as in config targeting.
    var platforms: [String] = []
    /// Names of the enroll secret the node enrolled with (any of them).
    var secrets: [String] = []
    /// Tags of that secret (`enrollment.secrets[].tags`); all must be present.
    var tags: [String] = []
    /// An osquery version range such as `>=5.10` or `>=5.0 <5.12`, checked when parsed.
    var osqueryVersion: String?
    /// Globs over the subject, common name and DNS names of the certificate the node enrolled with.
    var certificates: [String] = []

    var isEmpty: Bool { !all && nodeIDs.isEmpty && !hasConditions }

    /// Whether any fact condition is given.
    var hasConditions: Bool {
        !hosts.isEmpty || !platforms.isEmpty || !secrets.isEmpty || !tags.isEmpty || osqueryVersion != nil || !certificates.isEmpty
    }

    /// The conditions as config targeting's match (nil for a version range that does not parse:
    /// it then matches no node, and `QueryRoutes` refuses it before a campaign is made).
    var match: AgentConfigTarget.Match? {
        var match = AgentConfigTarget.Match(platforms: platforms, hostIdentifiers: hosts, secrets: secrets, certificates: certificates, tags: tags)
        if let osqueryVersion {
            guard let range = VersionRange(osqueryVersion) else { return nil }
            match.versions = range
        }
        return match
    }

    func matches(_ node: NodeRecord, tags nodeTags: [String]) -> Bool {
        if node.revokedAt != nil { return false }
        if all || nodeIDs.contains(node.id) { return true }
        guard hasConditions, let match else { return false }
        return AgentConfigTarget(name: "campaign", match: match, sources: []).matches(NodeFacts(node: node, tags: nodeTags))
    }

    /// `{"all":false,"certificates":[...],"hosts":[...],"node_ids":[...],"osquery_version":null,
    /// "platforms":[...],"secrets":[...],"tags":[...]}`
    var json: JSONValue {
        .object(JSONObject([
            ("all", .bool(all)),
            ("node_ids", .array(nodeIDs.map(JSONValue.string))),
            ("hosts", .array(hosts.map(JSONValue.string))),
            ("platforms", .array(platforms.map(JSONValue.string))),
            ("secrets", .array(secrets.map(JSONValue.string))),
            ("tags", .array(tags.map(JSONValue.string))),
            ("osquery_version", .optional(osqueryVersion)),
            ("certificates", .array(certificates.map(JSONValue.string))),
        ]))
    }

    init(
        all: Bool = false, nodeIDs: [String] = [], hosts: [String] = [], platforms: [String] = [], secrets: [String] = [],
        tags: [String] = [], osqueryVersion: String? = nil, certificates: [String] = []
    ) {
        self.all = all
        self.nodeIDs = nodeIDs
        self.hosts = hosts
        self.platforms = platforms
        self.secrets = secrets
        self.tags = tags
        self.osqueryVersion = osqueryVersion
        self.certificates = certificates
    }

    /// Reads `json`'s form back (as stored); missing members are empty (campaigns stored before
    /// a condition existed).
    init(json: JSONValue) {
        func strings(_ key: String) -> [String] {
            guard case .array(let items)? = json[key] else { return [] }
            return items.compactMap(\.string)
        }
        if case .bool(let all)? = json["all"] { self.all = all }
        nodeIDs = strings("node_ids")
        hosts = strings("hosts")
        platforms = strings("platforms")
        secrets = strings("secrets")
        tags = strings("tags")
        osqueryVersion = json["osquery_version"]?.string
        certificates = strings("certificates")
    }
}

/// Where one targeted node is in a campaign: pending -> sent -> answered | failed, or expired
/// (or cancelled) while pending or sent.
enum CampaignNodeState: String, Sendable, CaseIterable {
    case pending, sent, answered, failed, expired, cancelled

    /// Still waiting for this node.
    var isOutstanding: Bool { self == .pending || self == .sent }
}

/// One targeted node of a campaign and what became of it.
struct CampaignNode: Sendable, Equatable {
    var nodeID: String
    var hostIdentifier: String
    var state: CampaignNodeState
    var sentAt: Date? = nil
    var answeredAt: Date? = nil
    /// osquery's status for the query (0 ok; non-zero failed, with `message`).
    var status: Int? = nil
    var message: String? = nil

    /// The state as seen at `now`: a node still outstanding in a campaign that has ended is expired
    /// (or cancelled) even before the sweep has written it.
    func state(in campaign: Campaign, at now: Date) -> CampaignNodeState {
        guard state.isOutstanding else { return state }
        if campaign.cancelledAt != nil { return .cancelled }
        if now >= campaign.expiresAt { return .expired }
        return state
    }
}

/// One node's answer to a campaign, as its distributed write carried it.
struct CampaignAnswer: Sendable, Equatable {
    var campaignID: String
    var nodeID: String
    var status: Int
    var message: String
    /// The rows as the agent sent them (a JSON array).
    var rows: String
    var receivedAt: Date

    var failed: Bool { status != 0 }
}

/// Where campaigns, their targeted nodes and their results are kept: `SQLiteCampaignStore` beside a
/// SQLite node store, `PostgresCampaignStore` in the database several gateways share (issue 12).
protocol CampaignStore: Sendable {
    /// Stores a new campaign with its targeted nodes, all pending.
    func create(_ campaign: Campaign, nodes: [CampaignNode]) async throws
    /// Every campaign, newest first.
    func campaigns() async throws -> [Campaign]
    /// The campaigns neither cancelled nor expired at `date`, newest first (what the index holds).
    func campaigns(activeAt date: Date) async throws -> [Campaign]
    func campaign(id: String) async throws -> Campaign?
    /// The campaign's targeted nodes, by host identifier.
    func nodes(of campaignID: String) async throws -> [CampaignNode]
    /// Its stored answers (one per node at most), in arrival order.
    func answers(of campaignID: String) async throws -> [CampaignAnswer]
    /// `nodeID`'s stored answers (to any campaign) whose rows contain `text`, in arrival order: how
    /// a carve finds the campaign that asked for it by its `carve_guid`.
    func answers(from nodeID: String, mentioning text: String) async throws -> [CampaignAnswer]
    /// Per campaign, how many nodes are in each stored state.
    func stateCounts() async throws -> [String: [CampaignNodeState: Int]]
    /// Marks `node`'s pending work in these campaigns sent. Returns the ids that were still pending,
    /// in the order given: with several gateways, another may have sent the same work meanwhile, and
    /// a node is asked once.
    func markSent(_ campaignIDs: [String], node: String, at date: Date) async throws -> [String]
    /// Stores answers; an answer for a campaign and node already answered is ignored (osquery
    /// resends writes whose answer it did not get). Returns the answers that were new.
    func record(_ answers: [CampaignAnswer]) async throws -> [CampaignAnswer]
    /// Stops a campaign: its outstanding nodes become cancelled.
    func cancel(_ id: String, at date: Date) async throws
    /// Its outstanding nodes become expired.
    func expire(_ id: String) async throws
}
