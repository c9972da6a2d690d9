import Foundation
import GRDB

/// Carves in their own SQLite file in `data_dir` (`carves.sqlite`), WAL mode through GRDB, apart
/// from the node and campaign stores so that megabytes of blocks never slow authentication or
/// live queries.
///
/// Each block is one row, written in its own transaction before the agent hears `{}`, keyed by
/// carve and block id (`INSERT OR IGNORE`: a resent block is stored once). Once the file is
/// assembled the blocks are deleted; SQLite reuses their pages for the next carve.
final class SQLiteCarveStore: CarveStore {
    private let pool: DatabasePool

    init(path: String) throws {
        pool = try DatabasePool.gatewayFile(at: path)
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(sql: """
                CREATE TABLE carves (
                    id TEXT PRIMARY KEY NOT NULL,
                    session_id TEXT NOT NULL UNIQUE,
                    node_id TEXT NOT NULL,
                    host_identifier TEXT NOT NULL,
                    carve_guid TEXT NOT NULL,
                    request_id TEXT NOT NULL,
                    campaign_id TEXT,
                    path TEXT,
                    block_count INTEGER NOT NULL,
                    block_size INTEGER NOT NULL,
                    size INTEGER NOT NULL,
                    started_at DOUBLE NOT NULL,
                    state TEXT NOT NULL,
                    completed_at DOUBLE,
                    sha256 TEXT,
                    compressed INTEGER NOT NULL DEFAULT 0,
                    error TEXT
                );
                CREATE INDEX carves_node_guid ON carves (node_id, carve_guid);
                CREATE TABLE carve_blocks (
                    carve_id TEXT NOT NULL,
                    block_id INTEGER NOT NULL,
                    data BLOB NOT NULL,
                    PRIMARY KEY (carve_id, block_id)
                ) WITHOUT ROWID;
                """)
        }
        try migrator.migrate(pool)
    }

    /// The columns of a carve, and its stored block count.
    private static let select = """
        SELECT id, session_id, node_id, host_identifier, carve_guid, request_id, campaign_id, path, block_count,
               block_size, size, started_at, state, completed_at, sha256, compressed, error,
               (SELECT COUNT(*) FROM carve_blocks WHERE carve_id = carves.id) AS blocks_received
        FROM carves
        """

    func create(_ carve: Carve) async throws {
        try await pool.write { db in
            try db.execute(
                sql: """
                    INSERT INTO carves (id, session_id, node_id, host_identifier, carve_guid, request_id, campaign_id, path,
                                        block_count, block_size, size, started_at, state)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [carve.id, carve.sessionID, carve.nodeID, carve.hostIdentifier, carve.carveGUID, carve.requestID,
                            carve.campaignID, carve.path, carve.blockCount, carve.blockSize, carve.size,
                            carve.startedAt.timeIntervalSince1970, carve.state.rawValue])
        }
    }

    func carve(id: String) async throws -> Carve? {
        try await pool.read { db in
            try Row.fetchOne(db, sql: Self.select + " WHERE id = ?", arguments: [id]).map(Self.carve)
        }
    }

    func carve(sessionID: String) async throws -> Carve? {
        try await pool.read { db in
            try Row.fetchOne(db, sql: Self.select + " WHERE session_id = ?", arguments: [sessionID]).map(Self.carve)
        }
    }

    func carve(nodeID: String, carveGUID: String) async throws -> Carve? {
        try await pool.read { db in
            try Row.fetchOne(
                db, sql: Self.select + " WHERE node_id = ? AND carve_guid = ? ORDER BY started_at DESC LIMIT 1",
                arguments: [nodeID, carveGUID]
            ).map(Self.carve)
        }
    }

    func carves() async throws -> [Carve] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: Self.select + " ORDER BY started_at DESC, id").map(Self.carve)
        }
    }

    func receivingCarves() async throws -> [Carve] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: Self.select + " WHERE state = 'receiving'").map(Self.carve)
        }
    }

    func openCount() async throws -> Int {
        try await pool.read { db in
            try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM carves WHERE state = 'receiving'") ?? 0
        }
    }

    func store(block index: Int, of id: String, data: Data) async throws -> (new: Bool, stored: Int) {
        try await pool.write { db in
            // Only while the carve receives: a block resent during assembly must not outlive it.
            try db.execute(
                sql: """
                    INSERT OR IGNORE INTO carve_blocks (carve_id, block_id, data)
                    SELECT ?, ?, ? WHERE EXISTS (SELECT 1 FROM carves WHERE id = ? AND state = 'receiving')
                    """,
                arguments: [id, index, data, id])
            let new = db.changesCount > 0
            let stored = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM carve_blocks WHERE carve_id = ?", arguments: [id]) ?? 0
            return (new: new, stored: stored)
        }
    }

    func blocks(of id: String, from start: Int, limit: Int) async throws -> [(index: Int, data: Data)] {
        try await pool.read { db in
            try Row.fetchAll(
                db, sql: "SELECT block_id, data FROM carve_blocks WHERE carve_id = ? AND block_id >= ? ORDER BY block_id LIMIT ?",
                arguments: [id, start, limit]
            ).map { (row: Row) -> (index: Int, data: Data) in
                let index: Int = row["block_id"]
                let data: Data = row["data"]
                return (index: index, data: data)
            }
        }
    }

    func complete(_ id: String, sha256: String, compressed: Bool, at date: Date) async throws {
        try await pool.write { db in
            try db.execute(
                sql: "UPDATE carves SET state = 'complete', completed_at = ?, sha256 = ?, compressed = ?, error = NULL WHERE id = ?",
                arguments: [date.timeIntervalSince1970, sha256, compressed, id])
            try db.execute(sql: "DELETE FROM carve_blocks WHERE carve_id = ?", arguments: [id])
        }
    }

    func end(_ id: String, as state: CarveState, reason: String, at date: Date) async throws {
        try await pool.write { db in
            try db.execute(
                sql: "UPDATE carves SET state = ?, completed_at = ?, error = ? WHERE id = ? AND state = 'receiving'",
                arguments: [state.rawValue, date.timeIntervalSince1970, reason, id])
            try db.execute(sql: "DELETE FROM carve_blocks WHERE carve_id = ?", arguments: [id])
        }
    }

    func link(_ id: String, campaignID: String, path: String?) async throws {
        try await pool.write { db in
            try db.execute(sql: "UPDATE carves SET campaign_id = ?, path = ? WHERE id = ?", arguments: [campaignID, path, id])
        }
    }

    private static func carve(_ row: Row) -> Carve {
        let startedAt: Double = row["started_at"]
        let completedAt: Double? = row["completed_at"]
        let state: String = row["state"]
        let compressed: Bool = row["compressed"]
        return Carve(
            id: row["id"], sessionID: row["session_id"], nodeID: row["node_id"], hostIdentifier: row["host_identifier"],
            carveGUID: row["carve_guid"], requestID: row["request_id"], campaignID: row["campaign_id"], path: row["path"],
            blockCount: row["block_count"], blockSize: row["block_size"], size: row["size"],
            startedAt: Date(timeIntervalSince1970: startedAt), state: CarveState(rawValue: state) ?? .failed,
            blocksReceived: row["blocks_received"], completedAt: completedAt.map(Date.init(timeIntervalSince1970:)),
            sha256: row["sha256"], compressed: compressed, error: row["error"])
    }
}
