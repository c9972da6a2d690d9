import Foundation

/// Copies every node of one store into another, so a fleet moves from SQLite to PostgreSQL without
/// one agent enrolling again (`osquery-gateway store copy`, issue 12 item 5).
///
/// A node is copied whole: its id, key hash, host key, facts, enroll secret name, certificate
/// binding, enrollment and last-seen times, sealed upstream key and revocation. Rerunning is safe:
/// a node the destination holds as the source does is left alone, so a copy that stopped half way
/// is finished by running it again, and a copy made while the old gateway still ran is brought up
/// to date by a second one after it stopped.
///
/// A node the destination holds differently (a row changed there, or the host enrolled there
/// already under another id, which holds its key or host key) is refused and reported, unless
/// `force`: then the source's row replaces it. `last_seen` alone never makes a difference: the
/// later of the two times is kept.
struct NodeStoreCopy: Sendable {
    /// Why a node was not copied.
    enum Refusal: String, Sendable, Equatable {
        /// The destination has a node with this id whose columns differ.
        case differs = "differs in the destination"
        /// Another node of the destination holds this node's key hash or host key.
        case taken = "its host or node key belongs to another node in the destination"
    }

    /// A node left as the destination has it.
    struct Refused: Sendable, Equatable {
        var id: String
        var hostIdentifier: String
        var reason: Refusal
    }

    /// What a copy did so far.
    struct Counts: Sendable, Equatable {
        /// Nodes read from the source.
        var read = 0
        /// Inserted into the destination.
        var copied = 0
        /// Already in the destination as in the source (last_seen aside).
        var unchanged = 0
        /// Replaced by the source's row (`force`).
        var overwritten = 0
        /// Left as the destination has them (no `force`).
        var refused: [Refused] = []

        /// `nodes: 3 read, 3 copied, 0 already there, 0 overwritten, 0 refused`.
        var summary: String {
            "nodes: \(read) read, \(copied) copied, \(unchanged) already there, \(overwritten) overwritten, \(refused.count) refused"
        }
    }

    /// Overwrite nodes the destination holds differently.
    var force = false
    /// Nodes read, and written, at a time.
    var pageSize = 500

    /// Copies every node of `source` into `destination`, page by page in id order.
    /// - Parameter progress: called after each page with the counts so far.
    /// - Throws: the first store error; what was written before it stays (rerun to finish).
    func run(from source: any BulkNodeStore, to destination: any BulkNodeStore,
             progress: (Counts) -> Void = { _ in }) async throws -> Counts {
        var counts = Counts()
        var after: String?
        while true {
            let page = try await source.nodes(after: after, limit: pageSize)
            guard let last = page.last else { break }
            after = last.id
            counts.read += page.count
            let inserted = try await destination.insertCopies(page)
            counts.copied += inserted.count
            let rest = page.filter { !inserted.contains($0.id) }
            if !rest.isEmpty {
                try await settle(rest, in: destination, counts: &counts)
            }
            progress(counts)
        }
        return counts
    }

    /// The nodes of a page that the destination had already: alike, differing, or taken.
    private func settle(_ nodes: [NodeRecord], in destination: any BulkNodeStore, counts: inout Counts) async throws {
        let found = try await destination.nodes(ids: nodes.map(\.id))
        let stored = Dictionary(uniqueKeysWithValues: found.map { ($0.id, $0) })
        var replace: [NodeRecord] = []
        var seen: [String: Date] = [:]
        for node in nodes {
            if let existing = stored[node.id], Self.alike(node, existing) {
                counts.unchanged += 1
                if let time = node.lastSeen, existing.lastSeen.map({ $0 < time }) ?? true { seen[node.id] = time }
            } else if force {
                replace.append(node)
            } else {
                counts.refused.append(Refused(
                    id: node.id, hostIdentifier: node.hostIdentifier, reason: stored[node.id] == nil ? .taken : .differs))
            }
        }
        if !replace.isEmpty {
            try await destination.replaceWithCopies(replace)
            counts.overwritten += replace.count
        }
        if !seen.isEmpty { try await destination.recordLastSeen(seen) }
    }

    /// The same node, whatever either store last saw of it.
    static func alike(_ a: NodeRecord, _ b: NodeRecord) -> Bool {
        var a = a
        a.lastSeen = b.lastSeen
        return a == b
    }
}
