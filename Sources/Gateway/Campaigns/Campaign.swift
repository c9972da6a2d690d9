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
/// host-identifier globs and platforms (the node facts of config targeting, `AgentConfigTarget`;
/// both kinds given means both must hold). Revoked nodes are never asked.
struct CampaignTarget: Sendable, Equatable {
    var all = false
    var nodeIDs: [String] = []
    /// Globs over the host identifier (`*`, `?`).
    var hosts: [String] = []
    /// osquery platform names or `os_version.platform` values, as in config targeting.
    var platforms: [String] = []

    var isEmpty: Bool { !all && nodeIDs.isEmpty && hosts.isEmpty && platforms.isEmpty }

    func matches(_ node: NodeRecord, tags: [String]) -> Bool {
        if node.revokedAt != nil { return false }
        if all || nodeIDs.contains(node.id) { return true }
        guard !hosts.isEmpty || !platforms.isEmpty else { return false }
        let facts = NodeFacts(
            hostIdentifier: node.hostIdentifier, platformType: node.platformType, hostDetails: node.hostDetails,
            secretName: node.secretName, tags: tags, certificate: nil)
        let target = AgentConfigTarget(
            name: "campaign", match: .init(platforms: platforms, hostIdentifiers: hosts), sources: [])
        return target.matches(facts)
    }

    /// `{"all":false,"hosts":[...],"node_ids":[...],"platforms":[...]}`
    var json: JSONValue {
        .object(JSONObject([
            ("all", .bool(all)),
            ("node_ids", .array(nodeIDs.map(JSONValue.string))),
            ("hosts", .array(hosts.map(JSONValue.string))),
            ("platforms", .array(platforms.map(JSONValue.string))),
        ]))
    }

    init(all: Bool = false, nodeIDs: [String] = [], hosts: [String] = [], platforms: [String] = []) {
        self.all = all
        self.nodeIDs = nodeIDs
        self.hosts = hosts
        self.platforms = platforms
    }

    /// Reads `json`'s form back (as stored); missing members are empty.
    init(json: JSONValue) {
        func strings(_ key: String) -> [String] {
            guard case .array(let items)? = json[key] else { return [] }
            return items.compactMap(\.string)
        }
        if case .bool(let all)? = json["all"] { self.all = all }
        nodeIDs = strings("node_ids")
        hosts = strings("hosts")
        platforms = strings("platforms")
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

/// Where campaigns, their targeted nodes and their results are kept (SQLite now; a PostgreSQL store
/// for the scale-out issue implements the same).
protocol CampaignStore: Sendable {
    /// Stores a new campaign with its targeted nodes, all pending.
    func create(_ campaign: Campaign, nodes: [CampaignNode]) async throws
    /// Every campaign, newest first.
    func campaigns() async throws -> [Campaign]
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
    /// Marks `node`'s pending work in these campaigns sent.
    func markSent(_ campaignIDs: [String], node: String, at date: Date) async throws
    /// Stores answers; an answer for a campaign and node already answered is ignored (osquery
    /// resends writes whose answer it did not get). Returns the answers that were new.
    func record(_ answers: [CampaignAnswer]) async throws -> [CampaignAnswer]
    /// Stops a campaign: its outstanding nodes become cancelled.
    func cancel(_ id: String, at date: Date) async throws
    /// Its outstanding nodes become expired.
    func expire(_ id: String) async throws
}
