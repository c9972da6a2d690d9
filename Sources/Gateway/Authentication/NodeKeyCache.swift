/// What the authenticator remembers about key hashes, so that polling agents cost no database
/// read: the node of each known key until it is invalidated or evicted, and each key found unknown
/// for a short time (a client hammering with a bad key reads the store once per `unknownTTL`).
///
/// Invalidations (a revocation or re-enrollment heard from another gateway, a backstop reload,
/// a reconnected listener) bump `generation`. A request that read the store before one must not
/// cache what it read afterwards, or a stale row would outlive the invalidation; so a read notes
/// the generation first and caches only if it is unchanged (`NodeAuthenticator.byKey`).
///
/// A value type: the authenticator keeps it behind a lock.
struct NodeKeyCache: Sendable {
    /// What the cache says about a key hash.
    enum Lookup: Sendable, Equatable {
        case known(NodeRecord)
        /// Found unknown a moment ago: `node_invalid` again without asking the store.
        case unknown
        /// Nothing remembered: ask the store.
        case miss
    }

    /// One node as the database has it now, for dropping cached copies that differ (`dropStale`).
    struct Current: Sendable, Equatable {
        var keyHash: [UInt8]
        var revoked: Bool
    }

    private var known: [[UInt8]: NodeRecord] = [:]
    private var unknown: [[UInt8]: ContinuousClock.Instant] = [:]
    private(set) var generation: UInt64 = 0
    let capacity: Int
    let unknownCapacity: Int
    let unknownTTL: Duration

    init(capacity: Int, unknownTTL: Duration) {
        self.capacity = capacity
        unknownCapacity = max(1, min(capacity, 50_000))
        self.unknownTTL = unknownTTL
    }

    var count: Int { known.count }

    func lookup(_ hash: [UInt8], at now: ContinuousClock.Instant) -> Lookup {
        if let node = known[hash] { return .known(node) }
        if let until = unknown[hash], now < until { return .unknown }
        return .miss
    }

    /// Remembers a known node (and forgets that its key was ever unknown).
    mutating func insert(_ node: NodeRecord) {
        if known.count >= capacity { known.removeAll(keepingCapacity: true) }
        unknown[node.keyHash] = nil
        known[node.keyHash] = node
    }

    /// Remembers that `hash` is no node's key, until `unknownTTL` from `now`.
    mutating func insertUnknown(_ hash: [UInt8], at now: ContinuousClock.Instant) {
        guard unknownTTL > .zero else { return }
        if unknown.count >= unknownCapacity {
            unknown = unknown.filter { now < $0.value }
            if unknown.count >= unknownCapacity { unknown.removeAll(keepingCapacity: true) }
        }
        unknown[hash] = now + unknownTTL
    }

    /// Forgets one key, known or unknown.
    mutating func remove(_ hash: [UInt8]) {
        generation &+= 1
        known[hash] = nil
        unknown[hash] = nil
    }

    /// Forgets everything.
    mutating func removeAll() {
        generation &+= 1
        known.removeAll(keepingCapacity: true)
        unknown.removeAll(keepingCapacity: true)
    }

    /// Drops the cached nodes that `current` (node id -> the stored key and revocation) shows to be
    /// out of date: an old key of a node enrolled again, or a node revoked since it was cached.
    /// Nodes cached as they are stored stay, so a backstop after many enrollments costs no reads.
    /// - Returns: how many keys were dropped.
    @discardableResult
    mutating func dropStale(_ current: [String: Current]) -> Int {
        guard !current.isEmpty else { return 0 }
        var stale: [[UInt8]] = []
        for (hash, node) in known {
            guard let stored = current[node.id] else { continue }
            if stored.keyHash != hash || stored.revoked != (node.revokedAt != nil) { stale.append(hash) }
        }
        guard !stale.isEmpty else { return 0 }
        generation &+= 1
        for hash in stale { known[hash] = nil }
        return stale.count
    }
}
