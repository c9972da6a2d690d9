import Foundation

/// A node as the gateway remembers it. Holds no node key, only its hash.
struct NodeRecord: Sendable, Equatable {
    /// The gateway's own id for the node (a UUID), stable across re-enrollments of the same host.
    var id: String
    /// SHA-256 of the current node key.
    var keyHash: [UInt8]
    /// `osquery_info.instance_id`, else `system_info.uuid`: enrolling again with the same value
    /// replaces this node's key.
    var hostKey: String?
    var hostIdentifier: String
    var platformType: String
    /// `host_details` exactly as the agent sent it (JSON text).
    var hostDetails: String
    /// Name of the enroll secret used, or nil when a certificate alone enrolled the node.
    var secretName: String?
    /// SHA-256 of the client certificate the node enrolled with; the node key then only works with it.
    var certificateFingerprint: String?
    var enrolledAt: Date
    var lastSeen: Date?
    /// In front of an upstream backend: the node key that backend gave this node, sealed with the
    /// gateway's upstream key (`UpstreamKeySealer`), never in plaintext. nil without a backend.
    var upstreamKey: [UInt8]? = nil
    /// When the backend declared this node's key invalid: the gateway refuses its key too
    /// (`node_invalid`) until the host enrolls again.
    var revokedAt: Date? = nil
    /// The subject, common name and DNS names of the client certificate the node enrolled with
    /// (`PeerCertificate.names`), so campaigns can target certificate names without a connection.
    var certificateNames: [String] = []
}

extension NodeRecord {
    /// `certificateNames` as the stores keep it: a JSON array of strings, nil when there are none.
    var certificateNamesText: String? {
        guard !certificateNames.isEmpty else { return nil }
        return String(decoding: JSONValue.array(certificateNames.map(JSONValue.string)).canonicalJSON(), as: UTF8.self)
    }

    /// The names back from `certificateNamesText` (nil or unreadable: none).
    static func certificateNames(fromText text: String?) -> [String] {
        guard let text, case .array(let items)? = try? JSONValue(parsing: Array(text.utf8)) else { return [] }
        return items.compactMap(\.string)
    }
}

/// Where nodes are kept.
///
/// ```swift
/// let store = try SQLiteNodeStore(path: "data/nodes.sqlite")
/// let previous = try await store.save(record)    // re-enrollment: previous key stops working
/// let node = try await store.node(keyHash: NodeKey.hash(key))
/// ```
protocol NodeStore: Sendable {
    /// The node whose key hashes to `keyHash`.
    func node(keyHash: [UInt8]) async throws -> NodeRecord?
    /// The node bound to a client certificate.
    func node(certificateFingerprint: String) async throws -> NodeRecord?
    /// The node with the gateway id `id` (sinks find a record's node by it).
    func node(id: String) async throws -> NodeRecord?
    /// Stores an enrollment. A node with the same `hostKey` is replaced (keeping its id); the replaced
    /// record is returned so caches can forget its key.
    /// - Throws: `NodeStoreError.boundToAnotherCertificate`, changing nothing, when the node with that
    ///   `hostKey` is bound to a certificate other than `node.certificateFingerprint` (or `node` has none).
    func save(_ node: NodeRecord) async throws -> NodeRecord?
    /// Marks `node`'s enrollment revoked at `date`, if it is still the current one (the stored key
    /// hash is `node.keyHash`): a host that enrolled again meanwhile is left alone.
    func revoke(_ node: NodeRecord, at date: Date) async throws
    /// Every node, by host identifier then id (the admin API's node list and campaign targeting).
    func allNodes() async throws -> [NodeRecord]
    /// Writes a batch of last-seen times (node id → time).
    func recordLastSeen(_ times: [String: Date]) async throws
    /// How many nodes are stored.
    func count() async throws -> Int
}

/// A store's answer that is not an outage.
enum NodeStoreError: Error, Equatable {
    /// Re-enrollment of a certificate-bound host without that certificate; the stored node is unchanged.
    case boundToAnotherCertificate
}
