/// What copying a whole node store needs (`osquery-gateway store copy`, issue 12 item 5): reading
/// it page by page, and writing rows exactly as they are (ids, key hashes, enrollment and
/// revocation times), which enrollment never does.
///
/// Apart from `NodeStore` because a serving gateway never calls these: request paths, test stores
/// and caches stay as they are.
///
/// ```swift
/// let page = try await sqlite.nodes(after: nil, limit: 500)
/// let inserted = try await postgres.insertCopies(page)     // ids that were not there yet
/// ```
protocol BulkNodeStore: NodeStore {
    /// Up to `limit` nodes in id order, the first one after `id` (nil: from the start).
    func nodes(after id: String?, limit: Int) async throws -> [NodeRecord]
    /// The stored nodes among `ids`, in no particular order.
    func nodes(ids: [String]) async throws -> [NodeRecord]
    /// Inserts `nodes` as they are, skipping each that would collide with a stored node: the same
    /// id, key hash or host key. Running it twice inserts nothing the second time.
    /// - Returns: the ids inserted.
    func insertCopies(_ nodes: [NodeRecord]) async throws -> Set<String>
    /// Writes `nodes` as they are over what is stored, in one transaction: the node with the same id
    /// is replaced, and any other node holding its key hash or host key is deleted (its key stops
    /// working).
    func replaceWithCopies(_ nodes: [NodeRecord]) async throws
}
