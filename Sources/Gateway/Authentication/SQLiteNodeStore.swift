import Foundation
import GRDB

/// The embedded node store: one SQLite file in WAL mode through GRDB.
final class SQLiteNodeStore: NodeStore {
    /// The `node_store` section: `sqlite`, the database file (in `data_dir`, `nodes.sqlite` by default).
    struct Configuration: Sendable, Equatable {
        var path: String
    }

    private let pool: DatabasePool

    /// Opens or creates the database and applies migrations.
    init(path: String) throws {
        pool = try DatabasePool.gatewayFile(at: path)
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(sql: """
                CREATE TABLE nodes (
                    id TEXT PRIMARY KEY NOT NULL,
                    key_hash BLOB NOT NULL UNIQUE,
                    host_key TEXT UNIQUE,
                    host_identifier TEXT NOT NULL,
                    platform_type TEXT NOT NULL,
                    host_details TEXT NOT NULL,
                    secret_name TEXT,
                    certificate_fingerprint TEXT,
                    enrolled_at DOUBLE NOT NULL,
                    last_seen DOUBLE
                );
                CREATE INDEX nodes_certificate ON nodes(certificate_fingerprint);
                """)
        }
        // Upstream mode (docs/upstream.md): the backend's key for the node, sealed, and when the
        // backend revoked it.
        migrator.registerMigration("v2") { db in
            try db.execute(sql: """
                ALTER TABLE nodes ADD COLUMN upstream_key BLOB;
                ALTER TABLE nodes ADD COLUMN revoked_at DOUBLE;
                """)
        }
        // Campaign targeting by certificate name (docs/admin-api.md).
        migrator.registerMigration("v3") { db in
            try db.execute(sql: "ALTER TABLE nodes ADD COLUMN certificate_names TEXT")
        }
        try migrator.migrate(pool)
    }

    private static let columns =
        "id, key_hash, host_key, host_identifier, platform_type, host_details, secret_name, certificate_fingerprint, enrolled_at, last_seen, upstream_key, revoked_at, certificate_names"

    func node(keyHash: [UInt8]) async throws -> NodeRecord? {
        try await pool.read { db in
            try Row.fetchOne(db, sql: "SELECT \(Self.columns) FROM nodes WHERE key_hash = ?", arguments: [Data(keyHash)])
                .map(Self.record)
        }
    }

    func node(certificateFingerprint: String) async throws -> NodeRecord? {
        try await pool.read { db in
            try Row.fetchOne(
                db, sql: "SELECT \(Self.columns) FROM nodes WHERE certificate_fingerprint = ? ORDER BY enrolled_at DESC LIMIT 1",
                arguments: [certificateFingerprint]
            ).map(Self.record)
        }
    }

    func node(id: String) async throws -> NodeRecord? {
        try await pool.read { db in
            try Row.fetchOne(db, sql: "SELECT \(Self.columns) FROM nodes WHERE id = ?", arguments: [id]).map(Self.record)
        }
    }

    func allNodes() async throws -> [NodeRecord] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT \(Self.columns) FROM nodes ORDER BY host_identifier, id").map(Self.record)
        }
    }

    func revoke(_ node: NodeRecord, at date: Date) async throws {
        try await pool.write { db in
            try db.execute(
                sql: "UPDATE nodes SET revoked_at = ? WHERE id = ? AND key_hash = ?",
                arguments: [date.timeIntervalSince1970, node.id, Data(node.keyHash)])
        }
    }

    func save(_ node: NodeRecord) async throws -> NodeRecord? {
        try await pool.write { db in
            var node = node
            var previous: NodeRecord?
            if let hostKey = node.hostKey {
                previous = try Row.fetchOne(db, sql: "SELECT \(Self.columns) FROM nodes WHERE host_key = ?", arguments: [hostKey])
                    .map(Self.record)
            }
            if let previous {
                // A host bound to a certificate is re-enrolled only by that certificate (threat model).
                if let bound = previous.certificateFingerprint, bound != node.certificateFingerprint {
                    throw NodeStoreError.boundToAnotherCertificate
                }
                node.id = previous.id
                try db.execute(
                    sql: """
                        UPDATE nodes SET key_hash = ?, host_identifier = ?, platform_type = ?, host_details = ?,
                            secret_name = ?, certificate_fingerprint = ?, enrolled_at = ?, last_seen = ?,
                            upstream_key = ?, revoked_at = ?, certificate_names = ? WHERE id = ?
                        """,
                    arguments: [Data(node.keyHash), node.hostIdentifier, node.platformType, node.hostDetails,
                                node.secretName, node.certificateFingerprint, node.enrolledAt.timeIntervalSince1970,
                                node.lastSeen?.timeIntervalSince1970, node.upstreamKey.map { Data($0) },
                                node.revokedAt?.timeIntervalSince1970, node.certificateNamesText, node.id])
            } else {
                try db.execute(sql: "INSERT INTO nodes (\(Self.columns)) VALUES \(Self.placeholders)", arguments: Self.arguments(node))
            }
            return previous
        }
    }

    func recordLastSeen(_ times: [String: Date]) async throws {
        guard !times.isEmpty else { return }
        try await pool.write { db in
            let statement = try db.cachedStatement(sql: "UPDATE nodes SET last_seen = ? WHERE id = ?")
            for (id, time) in times {
                try statement.execute(arguments: [time.timeIntervalSince1970, id])
            }
        }
    }

    func count() async throws -> Int {
        try await pool.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM nodes") ?? 0 }
    }

    private static let placeholders = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"

    /// `node`'s values in the order of `columns`.
    private static func arguments(_ node: NodeRecord) -> StatementArguments {
        [node.id, Data(node.keyHash), node.hostKey, node.hostIdentifier, node.platformType, node.hostDetails,
         node.secretName, node.certificateFingerprint, node.enrolledAt.timeIntervalSince1970,
         node.lastSeen?.timeIntervalSince1970, node.upstreamKey.map { Data($0) }, node.revokedAt?.timeIntervalSince1970,
         node.certificateNamesText]
    }

    private static func record(_ row: Row) -> NodeRecord {
        let keyHash: Data = row["key_hash"]
        let enrolledAt: Double = row["enrolled_at"]
        let lastSeen: Double? = row["last_seen"]
        let upstreamKey: Data? = row["upstream_key"]
        let revokedAt: Double? = row["revoked_at"]
        let certificateNames: String? = row["certificate_names"]
        return NodeRecord(
            id: row["id"], keyHash: Array(keyHash), hostKey: row["host_key"], hostIdentifier: row["host_identifier"],
            platformType: row["platform_type"], hostDetails: row["host_details"], secretName: row["secret_name"],
            certificateFingerprint: row["certificate_fingerprint"],
            enrolledAt: Date(timeIntervalSince1970: enrolledAt), lastSeen: lastSeen.map(Date.init(timeIntervalSince1970:)),
            upstreamKey: upstreamKey.map { Array($0) }, revokedAt: revokedAt.map(Date.init(timeIntervalSince1970:)),
            certificateNames: NodeRecord.certificateNames(fromText: certificateNames))
    }
}

extension SQLiteNodeStore: BulkNodeStore {
    func nodes(after id: String?, limit: Int) async throws -> [NodeRecord] {
        try await pool.read { db in
            guard let id else {
                return try Row.fetchAll(db, sql: "SELECT \(Self.columns) FROM nodes ORDER BY id LIMIT ?", arguments: [limit])
                    .map(Self.record)
            }
            return try Row.fetchAll(db, sql: "SELECT \(Self.columns) FROM nodes WHERE id > ? ORDER BY id LIMIT ?", arguments: [id, limit])
                .map(Self.record)
        }
    }

    func nodes(ids: [String]) async throws -> [NodeRecord] {
        guard !ids.isEmpty else { return [] }
        let marks = Array(repeating: "?", count: ids.count).joined(separator: ", ")
        return try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT \(Self.columns) FROM nodes WHERE id IN (\(marks))", arguments: StatementArguments(ids))
                .map(Self.record)
        }
    }

    func insertCopies(_ nodes: [NodeRecord]) async throws -> Set<String> {
        try await pool.write { db in
            var inserted = Set<String>()
            let statement = try db.cachedStatement(
                sql: "INSERT INTO nodes (\(Self.columns)) VALUES \(Self.placeholders) ON CONFLICT DO NOTHING")
            for node in nodes {
                try statement.execute(arguments: Self.arguments(node))
                if db.changesCount > 0 { inserted.insert(node.id) }
            }
            return inserted
        }
    }

    /// `INSERT OR REPLACE` deletes every row that collides on the id, the key hash or the host key
    /// before it inserts: exactly what a forced copy means.
    func replaceWithCopies(_ nodes: [NodeRecord]) async throws {
        try await pool.write { db in
            let statement = try db.cachedStatement(sql: "INSERT OR REPLACE INTO nodes (\(Self.columns)) VALUES \(Self.placeholders)")
            for node in nodes {
                try statement.execute(arguments: Self.arguments(node))
            }
        }
    }
}

extension SQLiteNodeStore.Configuration {
    /// `node_store`: `sqlite`, the database file, in `data_dir`.
    init(reading section: MappingReader) {
        self.init(path: section.dataPath("sqlite") ?? section.reader.inDataDir("nodes.sqlite"))
    }
}
