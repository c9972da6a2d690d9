import Foundation

/// One file carve: what osquery's carve start announced, where its blocks are, and what became of it.
///
/// osquery collects the carved files into a tar (zstd-compressed with `--carver_compression`) and
/// uploads it in `block_count` blocks of `block_size` bytes, the last one shorter
/// (docs/protocol.md#carving). The gateway keeps every block as it arrives and, once all are in,
/// assembles the file under `carves.directory`, so a carve survives lost answers, retried blocks
/// and a gateway restart.
struct Carve: Sendable, Equatable {
    /// The gateway's own id (a UUID), shown to operators.
    var id: String
    /// The `session_id` the agent was given: 256 random bits, the only credential of a block from
    /// an agent older than 5.23 (which sends no `Authorization` header with blocks). Never shown.
    var sessionID: String
    /// The node that started the carve; only it may send its blocks.
    var nodeID: String
    var hostIdentifier: String
    /// osquery's `carve_id`: the `carve_guid` of the `carves` table row that requested the carve.
    var carveGUID: String
    /// osquery's `request_id` (a random UUID since osquery 4.7; the distributed query id before).
    var requestID: String
    /// The campaign whose query asked for this carve, when the gateway found it.
    var campaignID: String? = nil
    /// What was carved, from the campaign's `carves` row (`path`, comma-separated for several).
    var path: String? = nil
    var blockCount: Int
    var blockSize: Int
    /// `carve_size`: the bytes of the uploaded file (the tar, or the compressed tar).
    var size: Int
    var startedAt: Date
    var state: CarveState = .receiving
    /// How many distinct blocks are stored (filled in by the store's reads).
    var blocksReceived = 0
    var completedAt: Date? = nil
    /// Lower-case hex SHA-256 of the assembled file (osquery does not send one to compare with).
    var sha256: String? = nil
    /// The assembled file starts with the zstd frame magic: downloadable decompressed.
    var compressed = false
    /// Why a carve failed or expired.
    var error: String? = nil

    /// The byte count block `index` must decode to: `block_size`, except the last block, which
    /// holds what remains.
    func expectedLength(ofBlock index: Int) -> Int {
        index < blockCount - 1 ? blockSize : size - (blockCount - 1) * blockSize
    }

    /// Every block is stored but the file is not assembled yet.
    var isAssemblable: Bool { state == .receiving && blocksReceived >= blockCount }

    /// The status operators see: `receiving`, `assembling`, `complete`, `failed` or `expired`.
    var status: String { isAssemblable ? "assembling" : state.rawValue }
}

/// Where a carve is: receiving blocks -> complete | failed (size mismatch, unreadable store) |
/// expired (`carves.max_session_age` passed before the last block).
enum CarveState: String, Sendable, CaseIterable {
    case receiving, complete, failed, expired
}

/// Where carves and their blocks are kept (SQLite now; a PostgreSQL store for the scale-out issue
/// implements the same, so blocks of one carve may land on different gateways).
///
/// Blocks are stored durably before the agent hears `{}`, keyed by carve and block id: a block
/// osquery sends again (5.22.1+ retries a block whose answer was lost) is stored once.
protocol CarveStore: Sendable {
    /// Stores a new carve (no blocks yet).
    func create(_ carve: Carve) async throws
    func carve(id: String) async throws -> Carve?
    func carve(sessionID: String) async throws -> Carve?
    /// The newest carve `nodeID` started with this `carve_id` (a retried start is given the same session).
    func carve(nodeID: String, carveGUID: String) async throws -> Carve?
    /// Every carve, newest first.
    func carves() async throws -> [Carve]
    /// Every carve still receiving blocks, in any order: what the periodic sweep looks at. It is
    /// background work, not a request's, so a shared store does not count it as one.
    func receivingCarves() async throws -> [Carve]
    /// How many carves are still receiving blocks.
    func openCount() async throws -> Int
    /// Stores block `index` of carve `id` unless it is already stored or the carve no longer receives.
    /// - Returns: whether it was new, and how many distinct blocks of the carve are now stored.
    func store(block index: Int, of id: String, data: Data) async throws -> (new: Bool, stored: Int)
    /// Up to `limit` stored blocks of carve `id` from block `start` on, in block order, with their ids.
    func blocks(of id: String, from start: Int, limit: Int) async throws -> [(index: Int, data: Data)]
    /// Marks the carve assembled (`complete`) and drops its blocks.
    func complete(_ id: String, sha256: String, compressed: Bool, at date: Date) async throws
    /// Marks the carve `failed` or `expired` with its reason and drops its blocks.
    func end(_ id: String, as state: CarveState, reason: String, at date: Date) async throws
    /// Records the campaign that asked for the carve, and the carved path.
    func link(_ id: String, campaignID: String, path: String?) async throws
    /// A complete carve's blocks stay (a shared store, where the assembled file is on one gateway
    /// only): a download the local file cannot serve reads them instead.
    var keepsBlocksOfCompleteCarves: Bool { get }
}

extension CarveStore {
    var keepsBlocksOfCompleteCarves: Bool { false }
}
