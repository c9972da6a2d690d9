import Foundation
import Logging
import NIOCore
import PostgresNIO
import Support

/// Carves in the PostgreSQL database the gateways share (issue 12): osquery 5.23 opens a new
/// connection for every request, so behind a balancer one carve's blocks arrive through every
/// gateway, and each must see the others' blocks. The same `CarveStore` as `SQLiteCarveStore`, in
/// the tables of `PostgresSchema` version 5, through the node store's pool.
///
/// Storing a block locks its carve's row first (`FOR UPDATE`): blocks of one carve are counted one
/// after another, so exactly one gateway sees the last block arrive and assembles the file (a
/// sweep on any gateway catches a carve whose assembler died). The blocks of a complete carve are
/// kept: they are the copy every gateway can serve a download from, while the assembled file
/// exists only on the gateway that assembled it.
final class PostgresCarveStore: CarveStore {
    private let pool: PostgresPool

    init(pool: PostgresPool) {
        self.pool = pool
    }

    /// The columns of a carve, and its stored block count.
    private static let select = """
        SELECT id, session_id, node_id, host_identifier, carve_guid, request_id, campaign_id, path, block_count,
               block_size, size, started_at, state, completed_at, sha256, compressed, error,
               (SELECT count(*)::bigint FROM gateway_carve_blocks WHERE carve_id = gateway_carves.id)
        FROM gateway_carves
        """

    func create(_ carve: Carve) async throws {
        try await pool.rows("""
            INSERT INTO gateway_carves (id, session_id, node_id, host_identifier, carve_guid, request_id, campaign_id, path,
                                        block_count, block_size, size, started_at, state)
            VALUES (\(carve.id), \(carve.sessionID), \(carve.nodeID), \(carve.hostIdentifier), \(carve.carveGUID),
                    \(carve.requestID), \(carve.campaignID), \(carve.path), \(carve.blockCount), \(carve.blockSize),
                    \(carve.size), \(carve.startedAt.timeIntervalSince1970), \(carve.state.rawValue))
            """)
    }

    func carve(id: String) async throws -> Carve? {
        try await pool.rows("\(unescaped: Self.select) WHERE id = \(id)").first.map(Self.carve)
    }

    func carve(sessionID: String) async throws -> Carve? {
        try await pool.rows("\(unescaped: Self.select) WHERE session_id = \(sessionID)").first.map(Self.carve)
    }

    func carve(nodeID: String, carveGUID: String) async throws -> Carve? {
        try await pool.rows("""
            \(unescaped: Self.select) WHERE node_id = \(nodeID) AND carve_guid = \(carveGUID) ORDER BY started_at DESC LIMIT 1
            """).first.map(Self.carve)
    }

    func carves() async throws -> [Carve] {
        try await pool.rows("\(unescaped: Self.select) ORDER BY started_at DESC, id COLLATE \"C\"").map(Self.carve)
    }

    func receivingCarves() async throws -> [Carve] {
        try await pool.rows("\(unescaped: Self.select) WHERE state = 'receiving'", background: true).map(Self.carve)
    }

    func openCount() async throws -> Int {
        let value = try await pool.rows("SELECT count(*)::bigint FROM gateway_carves WHERE state = 'receiving'").first?.decode(Int64.self)
        return Int(value ?? 0)
    }

    func store(block index: Int, of id: String, data: Data) async throws -> (new: Bool, stored: Int) {
        let bytes = ByteBuffer(bytes: data)
        return try await pool.transaction { connection, logger in
            // Only while the carve receives: a block resent during assembly must not outlive it.
            let state = try await connection.query("SELECT state FROM gateway_carves WHERE id = \(id) FOR UPDATE", logger: logger)
                .collect().first?.decode(String.self)
            var new = false
            if state == CarveState.receiving.rawValue {
                new = try await !connection.query("""
                    INSERT INTO gateway_carve_blocks (carve_id, block_id, data) VALUES (\(id), \(index), \(bytes))
                    ON CONFLICT DO NOTHING RETURNING block_id
                    """, logger: logger).collect().isEmpty
            }
            let stored = try await connection.query("SELECT count(*)::bigint FROM gateway_carve_blocks WHERE carve_id = \(id)", logger: logger)
                .collect().first?.decode(Int64.self) ?? 0
            return (new: new, stored: Int(stored))
        }
    }

    func blocks(of id: String, from start: Int, limit: Int) async throws -> [(index: Int, data: Data)] {
        try await pool.rows("""
            SELECT block_id, data FROM gateway_carve_blocks WHERE carve_id = \(id) AND block_id >= \(start) ORDER BY block_id LIMIT \(limit)
            """).map { row in
            let (index, bytes) = try row.decode((Int, ByteBuffer).self)
            return (index: index, data: Data(bytes.readableBytesView))
        }
    }

    /// Marks the carve complete; its blocks stay, for downloads through any gateway.
    func complete(_ id: String, sha256: String, compressed: Bool, at date: Date) async throws {
        try await pool.rows("""
            UPDATE gateway_carves SET state = 'complete', completed_at = \(date.timeIntervalSince1970), sha256 = \(sha256),
                compressed = \(compressed), error = NULL
            WHERE id = \(id)
            """)
    }

    var keepsBlocksOfCompleteCarves: Bool { true }

    func end(_ id: String, as state: CarveState, reason: String, at date: Date) async throws {
        try await pool.transaction { connection, logger in
            _ = try await connection.query("""
                UPDATE gateway_carves SET state = \(state.rawValue), completed_at = \(date.timeIntervalSince1970), error = \(reason)
                WHERE id = \(id) AND state = 'receiving'
                """, logger: logger).collect()
            _ = try await connection.query("DELETE FROM gateway_carve_blocks WHERE carve_id = \(id)", logger: logger).collect()
        }
    }

    func link(_ id: String, campaignID: String, path: String?) async throws {
        try await pool.rows("UPDATE gateway_carves SET campaign_id = \(campaignID), path = \(path) WHERE id = \(id)")
    }

    private static func carve(_ row: PostgresRow) throws -> Carve {
        let columns = try row.decode(
            (String, String, String, String, String, String, String?, String?, Int, Int, Int, Double, String, Double?, String?, Bool, String?, Int64).self)
        return Carve(
            id: columns.0, sessionID: columns.1, nodeID: columns.2, hostIdentifier: columns.3, carveGUID: columns.4,
            requestID: columns.5, campaignID: columns.6, path: columns.7, blockCount: columns.8, blockSize: columns.9,
            size: columns.10, startedAt: Date(timeIntervalSince1970: columns.11), state: CarveState(rawValue: columns.12) ?? .failed,
            blocksReceived: Int(columns.17), completedAt: columns.13.map(Date.init(timeIntervalSince1970:)), sha256: columns.14,
            compressed: columns.15, error: columns.16)
    }
}
