import Foundation
import Logging
import NIOCore
import PostgresNIO
import Support

/// The node store several gateways share (issue 12): the same `NodeStore` as `SQLiteNodeStore`,
/// the same columns, in a PostgreSQL database.
///
/// The schema is versioned and migrated when the gateway starts (`PostgresSchema`: N gateways
/// starting together migrate once). Times are `double precision` seconds since 1970 as in SQLite,
/// so a record reads back exactly as it was saved (timestamptz would round to microseconds).
///
/// Every query has the endpoint's time limit (5 s by default, below osquery's request deadline); a
/// database that is down or slow is an error the authenticator turns into an error body, never
/// `node_invalid`.
final class PostgresNodeStore: NodeStore {
    /// The `node_store` section with `postgres`: the database keys of `PostgresEndpoint`, and how
    /// the gateways sharing it keep their caches current (`reload_every`).
    struct Configuration: Sendable, Equatable {
        var endpoint: PostgresEndpoint
        var control = PostgresControlChannel.Configuration()
    }

    /// The store's pool, which the campaign store shares (one database, one set of connections).
    let pool: PostgresPool
    let configuration: Configuration

    private init(configuration: Configuration, pool: PostgresPool) {
        self.configuration = configuration
        self.pool = pool
    }

    /// Connects and migrates the schema (`PostgresSchema`: the nodes' tables and the campaigns').
    /// - Throws: when the database cannot be reached within a minute or a migration fails; the
    ///   gateway then does not start.
    static func open(_ configuration: Configuration, logger: Logger) async throws -> PostgresNodeStore {
        let store = PostgresNodeStore(configuration: configuration, pool: PostgresPool(endpoint: configuration.endpoint, logger: logger))
        do {
            try await PostgresSchema.migrate(store.pool)
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

    // MARK: - NodeStore

    private static let columns =
        "id, key_hash, host_key, host_identifier, platform_type, host_details, secret_name, certificate_fingerprint, enrolled_at, last_seen, upstream_key, revoked_at, certificate_names"

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

    /// With the other gateways told (`ControlMessage.keyInvalidated`) in the same statement, so
    /// only when the row changed, and as it commits.
    func revoke(_ node: NodeRecord, at date: Date) async throws {
        try await pool.rows("""
            WITH revoked AS (
                UPDATE gateway_nodes SET revoked_at = \(date.timeIntervalSince1970)
                WHERE id = \(node.id) AND key_hash = \(ByteBuffer(bytes: node.keyHash))
                RETURNING id
            )
            SELECT pg_notify(\(ControlMessage.channel), \(ControlMessage.keyInvalidated(node.keyHash).payload)) FROM revoked
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
                        revoked_at = \(node.revokedAt?.timeIntervalSince1970), certificate_names = \(node.certificateNamesText)
                    WHERE id = \(node.id)
                    """, logger: logger).collect()
                // The old key stops working on every gateway, once this commits.
                if previous.keyHash != node.keyHash {
                    let payload = ControlMessage.keyInvalidated(previous.keyHash).payload
                    _ = try await connection.query("SELECT pg_notify(\(ControlMessage.channel), \(payload))", logger: logger).collect()
                }
            } else {
                _ = try await connection.query("""
                    INSERT INTO gateway_nodes (\(unescaped: Self.columns)) VALUES (
                        \(node.id), \(ByteBuffer(bytes: node.keyHash)), \(node.hostKey), \(node.hostIdentifier), \(node.platformType),
                        \(node.hostDetails), \(node.secretName), \(node.certificateFingerprint), \(node.enrolledAt.timeIntervalSince1970),
                        \(node.lastSeen?.timeIntervalSince1970), \(node.upstreamKey.map { ByteBuffer(bytes: $0) }),
                        \(node.revokedAt?.timeIntervalSince1970), \(node.certificateNamesText))
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
            """, background: true)
    }

    /// The nodes enrolled (or enrolled again) or revoked at `since` or later, by id: what the
    /// backstop reload compares the cached keys with, in case a notification was missed. Times are
    /// the enrolling gateway's clock, so the caller asks with a margin for clock skew.
    func changes(since: Date) async throws -> [String: NodeKeyCache.Current] {
        let seconds = since.timeIntervalSince1970
        var changes: [String: NodeKeyCache.Current] = [:]
        for row in try await pool.rows("""
            SELECT id, key_hash, revoked_at IS NOT NULL FROM gateway_nodes
            WHERE enrolled_at >= \(seconds) OR revoked_at >= \(seconds)
            """, background: true) {
            let (id, keyHash, revoked) = try row.decode((String, ByteBuffer, Bool).self)
            changes[id] = NodeKeyCache.Current(keyHash: Array(keyHash.readableBytesView), revoked: revoked)
        }
        return changes
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
        bindings.append(node.certificateNamesText)
    }

    /// `($first, ..., $first+12)`: one row of `columns` in a VALUES list.
    private static func placeholders(from first: Int) -> String {
        "(" + (first..<first + columnCount).map { "$\($0)" }.joined(separator: ", ") + ")"
    }

    /// `key_hash = EXCLUDED.key_hash, ...`: every column but the id, from the row that was refused.
    private static let columnCount = columns.components(separatedBy: ", ").count

    private static let excludedColumns = columns.components(separatedBy: ", ").dropFirst()
        .map { "\($0) = EXCLUDED.\($0)" }.joined(separator: ", ")

    private static func record(_ row: PostgresRow) throws -> NodeRecord {
        let (id, keyHash, hostKey, hostIdentifier, platformType, hostDetails, secretName, fingerprint, enrolledAt, lastSeen, upstreamKey, revokedAt,
             certificateNames) =
            try row.decode((String, ByteBuffer, String?, String, String, String, String?, String?, Double, Double?, ByteBuffer?, Double?, String?).self)
        return NodeRecord(
            id: id, keyHash: Array(keyHash.readableBytesView), hostKey: hostKey, hostIdentifier: hostIdentifier,
            platformType: platformType, hostDetails: hostDetails, secretName: secretName, certificateFingerprint: fingerprint,
            enrolledAt: Date(timeIntervalSince1970: enrolledAt), lastSeen: lastSeen.map(Date.init(timeIntervalSince1970:)),
            upstreamKey: upstreamKey.map { Array($0.readableBytesView) }, revokedAt: revokedAt.map(Date.init(timeIntervalSince1970:)),
            certificateNames: NodeRecord.certificateNames(fromText: certificateNames))
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
        var bindings = PostgresBindings(capacity: nodes.count * Self.columnCount)
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
                var bindings = PostgresBindings(capacity: Self.columnCount)
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
