import Foundation
import Logging
import NIOCore
import PostgresNIO
import Support

/// The node store several gateways share (issue 12): the same `NodeStore` as `SQLiteNodeStore`,
/// the same columns, in a PostgreSQL database.
///
/// The schema is versioned (`gateway_migrations`) and migrated when the gateway starts, under a
/// session advisory lock, so N gateways starting together migrate once and the others wait, then
/// find nothing to do. Times are `double precision` seconds since 1970 as in SQLite, so a record
/// reads back exactly as it was saved (timestamptz would round to microseconds).
///
/// Every query has the endpoint's time limit (5 s by default, below osquery's request deadline); a
/// database that is down or slow is an error the authenticator turns into an error body, never
/// `node_invalid`.
final class PostgresNodeStore: NodeStore {
    /// The `node_store` section with `postgres`: the database keys of `PostgresEndpoint`.
    struct Configuration: Sendable, Equatable {
        var endpoint: PostgresEndpoint
    }

    /// A migration: its version and its statements (one each: the extended protocol takes one).
    struct Migration: Sendable {
        var version: Int32
        var statements: [String]
    }

    /// Append only: a version, once released, never changes (gateways of the previous release
    /// may share the database while a fleet is upgraded).
    static let migrations: [Migration] = [
        Migration(version: 1, statements: [
            """
            CREATE TABLE gateway_nodes (
                id text PRIMARY KEY,
                key_hash bytea NOT NULL UNIQUE,
                host_key text UNIQUE,
                host_identifier text NOT NULL,
                platform_type text NOT NULL,
                host_details text NOT NULL,
                secret_name text,
                certificate_fingerprint text,
                enrolled_at double precision NOT NULL,
                last_seen double precision,
                upstream_key bytea,
                revoked_at double precision
            )
            """,
            "CREATE INDEX gateway_nodes_certificate ON gateway_nodes (certificate_fingerprint)",
        ]),
    ]

    /// The advisory lock migrations hold ("osqgw" and 1): one key per purpose in a shared database.
    static let migrationLock: Int64 = 0x6F73_7167_7700_0001

    private let pool: PostgresPool

    private init(pool: PostgresPool) {
        self.pool = pool
    }

    /// Connects and migrates the schema.
    /// - Throws: when the database cannot be reached within a minute or a migration fails; the
    ///   gateway then does not start.
    static func open(_ configuration: Configuration, logger: Logger) async throws -> PostgresNodeStore {
        let store = PostgresNodeStore(pool: PostgresPool(endpoint: configuration.endpoint, logger: logger))
        do {
            try await store.migrate()
        } catch {
            await store.shutdown()
            throw StartupFailure(endpoint: configuration.endpoint, reason: PostgresFailure.describe(error))
        }
        return store
    }

    struct StartupFailure: Error, CustomStringConvertible {
        var endpoint: PostgresEndpoint
        var reason: String
        var description: String { "node store \(endpoint): \(reason)" }
    }

    /// Closes the pool; call it after the last write (the last-seen flush).
    func shutdown() async {
        await pool.shutdown()
    }

    private func migrate() async throws {
        let client = pool.client
        let logger = pool.logger
        try await pool.withTimeLimit(.seconds(60)) {
            try await client.withConnection { connection in
                _ = try await connection.query("SELECT pg_advisory_lock(\(Self.migrationLock))", logger: logger).collect()
                do {
                    try await Self.applyMigrations(on: connection, logger: logger)
                } catch {
                    _ = try? await connection.query("SELECT pg_advisory_unlock(\(Self.migrationLock))", logger: logger).collect()
                    throw error
                }
                _ = try await connection.query("SELECT pg_advisory_unlock(\(Self.migrationLock))", logger: logger).collect()
            }
        }
    }

    /// Applies the migrations not yet recorded, each in a transaction with its record.
    private static func applyMigrations(on connection: PostgresConnection, logger: Logger) async throws {
        _ = try await connection.query(
            "CREATE TABLE IF NOT EXISTS gateway_migrations (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())",
            logger: logger).collect()
        var applied = Set<Int32>()
        for row in try await connection.query("SELECT version FROM gateway_migrations", logger: logger).collect() {
            applied.insert(try row.decode(Int32.self))
        }
        for migration in migrations where !applied.contains(migration.version) {
            _ = try await connection.query("BEGIN", logger: logger).collect()
            do {
                for statement in migration.statements {
                    _ = try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger).collect()
                }
                _ = try await connection.query("INSERT INTO gateway_migrations (version) VALUES (\(migration.version))", logger: logger).collect()
                _ = try await connection.query("COMMIT", logger: logger).collect()
            } catch {
                _ = try? await connection.query("ROLLBACK", logger: logger).collect()
                throw error
            }
        }
    }

    // MARK: - NodeStore

    private static let columns =
        "id, key_hash, host_key, host_identifier, platform_type, host_details, secret_name, certificate_fingerprint, enrolled_at, last_seen, upstream_key, revoked_at"

    func node(keyHash: [UInt8]) async throws -> NodeRecord? {
        try await pool.rows("SELECT \(unescaped: Self.columns) FROM gateway_nodes WHERE key_hash = \(ByteBuffer(bytes: keyHash))")
            .first.map(Self.record)
    }

    func node(certificateFingerprint: String) async throws -> NodeRecord? {
        try await pool.rows("""
            SELECT \(unescaped: Self.columns) FROM gateway_nodes WHERE certificate_fingerprint = \(certificateFingerprint)
            ORDER BY enrolled_at DESC LIMIT 1
            """).first.map(Self.record)
    }

    func node(id: String) async throws -> NodeRecord? {
        try await pool.rows("SELECT \(unescaped: Self.columns) FROM gateway_nodes WHERE id = \(id)").first.map(Self.record)
    }

    func allNodes() async throws -> [NodeRecord] {
        try await pool.rows("SELECT \(unescaped: Self.columns) FROM gateway_nodes ORDER BY host_identifier, id").map(Self.record)
    }

    func revoke(_ node: NodeRecord, at date: Date) async throws {
        try await pool.rows("""
            UPDATE gateway_nodes SET revoked_at = \(date.timeIntervalSince1970)
            WHERE id = \(node.id) AND key_hash = \(ByteBuffer(bytes: node.keyHash))
            """)
    }

    func save(_ node: NodeRecord) async throws -> NodeRecord? {
        do {
            return try await saveOnce(node)
        } catch let error where PostgresFailure.isUniqueViolation(error) {
            // Another gateway inserted the same host between our look-up and our insert: the
            // second attempt finds it and replaces it like any re-enrollment.
            return try await saveOnce(node)
        }
    }

    /// As `SQLiteNodeStore.save`, in one transaction; the host's row is locked while it is replaced.
    private func saveOnce(_ node: NodeRecord) async throws -> NodeRecord? {
        try await pool.transaction { connection, logger in
            var node = node
            var previous: NodeRecord?
            if let hostKey = node.hostKey {
                previous = try await connection.query(
                    "SELECT \(unescaped: Self.columns) FROM gateway_nodes WHERE host_key = \(hostKey) FOR UPDATE", logger: logger
                ).collect().first.map(Self.record)
            }
            if let previous {
                // A host bound to a certificate is re-enrolled only by that certificate (threat model).
                if let bound = previous.certificateFingerprint, bound != node.certificateFingerprint {
                    throw NodeStoreError.boundToAnotherCertificate
                }
                node.id = previous.id
                _ = try await connection.query("""
                    UPDATE gateway_nodes SET key_hash = \(ByteBuffer(bytes: node.keyHash)), host_identifier = \(node.hostIdentifier),
                        platform_type = \(node.platformType), host_details = \(node.hostDetails), secret_name = \(node.secretName),
                        certificate_fingerprint = \(node.certificateFingerprint), enrolled_at = \(node.enrolledAt.timeIntervalSince1970),
                        last_seen = \(node.lastSeen?.timeIntervalSince1970), upstream_key = \(node.upstreamKey.map { ByteBuffer(bytes: $0) }),
                        revoked_at = \(node.revokedAt?.timeIntervalSince1970)
                    WHERE id = \(node.id)
                    """, logger: logger).collect()
            } else {
                _ = try await connection.query("""
                    INSERT INTO gateway_nodes (\(unescaped: Self.columns)) VALUES (
                        \(node.id), \(ByteBuffer(bytes: node.keyHash)), \(node.hostKey), \(node.hostIdentifier), \(node.platformType),
                        \(node.hostDetails), \(node.secretName), \(node.certificateFingerprint), \(node.enrolledAt.timeIntervalSince1970),
                        \(node.lastSeen?.timeIntervalSince1970), \(node.upstreamKey.map { ByteBuffer(bytes: $0) }),
                        \(node.revokedAt?.timeIntervalSince1970))
                    """, logger: logger).collect()
            }
            return previous
        }
    }

    /// One statement for the whole batch (`unnest` of two arrays), not one per node.
    func recordLastSeen(_ times: [String: Date]) async throws {
        guard !times.isEmpty else { return }
        let ids = Array(times.keys)
        let seconds = ids.map { times[$0]!.timeIntervalSince1970 }
        try await pool.rows("""
            UPDATE gateway_nodes SET last_seen = seen.at
            FROM unnest(\(ids)::text[], \(seconds)::float8[]) AS seen(id, at)
            WHERE gateway_nodes.id = seen.id
            """)
    }

    func count() async throws -> Int {
        let rows = try await pool.rows("SELECT count(*)::bigint FROM gateway_nodes")
        let value = try rows.first?.decode(Int64.self) ?? 0
        return Int(value)
    }

    /// `node`'s values in the order of `columns`, appended to `bindings`.
    private static func bind(_ node: NodeRecord, into bindings: inout PostgresBindings) {
        bindings.append(node.id)
        bindings.append(ByteBuffer(bytes: node.keyHash))
        bindings.append(node.hostKey)
        bindings.append(node.hostIdentifier)
        bindings.append(node.platformType)
        bindings.append(node.hostDetails)
        bindings.append(node.secretName)
        bindings.append(node.certificateFingerprint)
        bindings.append(node.enrolledAt.timeIntervalSince1970)
        bindings.append(node.lastSeen?.timeIntervalSince1970)
        bindings.append(node.upstreamKey.map { ByteBuffer(bytes: $0) })
        bindings.append(node.revokedAt?.timeIntervalSince1970)
    }

    /// `($first, ..., $first+11)`: one row of `columns` in a VALUES list.
    private static func placeholders(from first: Int) -> String {
        "(" + (first..<first + 12).map { "$\($0)" }.joined(separator: ", ") + ")"
    }

    /// `key_hash = EXCLUDED.key_hash, ...`: every column but the id, from the row that was refused.
    private static let excludedColumns = columns.components(separatedBy: ", ").dropFirst()
        .map { "\($0) = EXCLUDED.\($0)" }.joined(separator: ", ")

    private static func record(_ row: PostgresRow) throws -> NodeRecord {
        let (id, keyHash, hostKey, hostIdentifier, platformType, hostDetails, secretName, fingerprint, enrolledAt, lastSeen, upstreamKey, revokedAt) =
            try row.decode((String, ByteBuffer, String?, String, String, String, String?, String?, Double, Double?, ByteBuffer?, Double?).self)
        return NodeRecord(
            id: id, keyHash: Array(keyHash.readableBytesView), hostKey: hostKey, hostIdentifier: hostIdentifier,
            platformType: platformType, hostDetails: hostDetails, secretName: secretName, certificateFingerprint: fingerprint,
            enrolledAt: Date(timeIntervalSince1970: enrolledAt), lastSeen: lastSeen.map(Date.init(timeIntervalSince1970:)),
            upstreamKey: upstreamKey.map { Array($0.readableBytesView) }, revokedAt: revokedAt.map(Date.init(timeIntervalSince1970:)))
    }
}

extension PostgresNodeStore: BulkNodeStore {
    func nodes(after id: String?, limit: Int) async throws -> [NodeRecord] {
        guard let id else {
            return try await pool.rows("SELECT \(unescaped: Self.columns) FROM gateway_nodes ORDER BY id LIMIT \(limit)").map(Self.record)
        }
        return try await pool.rows("SELECT \(unescaped: Self.columns) FROM gateway_nodes WHERE id > \(id) ORDER BY id LIMIT \(limit)")
            .map(Self.record)
    }

    func nodes(ids: [String]) async throws -> [NodeRecord] {
        guard !ids.isEmpty else { return [] }
        return try await pool.rows("SELECT \(unescaped: Self.columns) FROM gateway_nodes WHERE id = ANY(\(ids)::text[])").map(Self.record)
    }

    /// One statement for the whole batch (`ON CONFLICT DO NOTHING` covers every unique column);
    /// `RETURNING` names the rows it inserted.
    func insertCopies(_ nodes: [NodeRecord]) async throws -> Set<String> {
        guard !nodes.isEmpty else { return [] }
        var bindings = PostgresBindings(capacity: nodes.count * 12)
        var rows: [String] = []
        rows.reserveCapacity(nodes.count)
        for node in nodes {
            rows.append(Self.placeholders(from: bindings.count + 1))
            Self.bind(node, into: &bindings)
        }
        let query = PostgresQuery(
            unsafeSQL: "INSERT INTO gateway_nodes (\(Self.columns)) VALUES \(rows.joined(separator: ", ")) ON CONFLICT DO NOTHING RETURNING id",
            binds: bindings)
        let inserted = try await pool.rows(query)
        return Set(try inserted.map { try $0.decode(String.self) })
    }

    func replaceWithCopies(_ nodes: [NodeRecord]) async throws {
        guard !nodes.isEmpty else { return }
        try await pool.transaction { connection, logger in
            for node in nodes {
                _ = try await connection.query("""
                    DELETE FROM gateway_nodes WHERE id <> \(node.id)
                        AND (key_hash = \(ByteBuffer(bytes: node.keyHash)) OR host_key = \(node.hostKey))
                    """, logger: logger).collect()
                var bindings = PostgresBindings(capacity: 12)
                Self.bind(node, into: &bindings)
                let upsert = PostgresQuery(
                    unsafeSQL: """
                        INSERT INTO gateway_nodes (\(Self.columns)) VALUES \(Self.placeholders(from: 1))
                        ON CONFLICT (id) DO UPDATE SET \(Self.excludedColumns)
                        """,
                    binds: bindings)
                _ = try await connection.query(upsert, logger: logger).collect()
            }
        }
    }
}
