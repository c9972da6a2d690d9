import Logging
import PostgresNIO
import Support

/// The gateway's tables in a shared PostgreSQL database (issue 12): nodes, and the campaigns with
/// their targeted nodes and results, in one versioned schema (`gateway_migrations`).
///
/// Migrations run when a gateway starts, under a session advisory lock, so N gateways starting
/// together migrate once and the others wait, then find nothing to do. Each version is applied in
/// a transaction with its record, so a failed one leaves nothing behind.
enum PostgresSchema {
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
        // Campaigns (live queries), shared so that a campaign created on one gateway is served by
        // all, and an answer received by any is stored once (`gateway_campaign_results` is keyed by
        // campaign and node). The two node indexes serve the caches' backstop reload, which asks
        // for nodes enrolled or revoked lately.
        Migration(version: 2, statements: [
            """
            CREATE TABLE gateway_campaigns (
                id text PRIMARY KEY,
                name text,
                sql text NOT NULL,
                target text NOT NULL,
                created_at double precision NOT NULL,
                expires_at double precision NOT NULL,
                cancelled_at double precision
            )
            """,
            """
            CREATE TABLE gateway_campaign_nodes (
                campaign_id text NOT NULL REFERENCES gateway_campaigns (id),
                node_id text NOT NULL,
                host_identifier text NOT NULL,
                state text NOT NULL,
                sent_at double precision,
                answered_at double precision,
                status bigint,
                message text,
                PRIMARY KEY (campaign_id, node_id)
            )
            """,
            """
            CREATE TABLE gateway_campaign_results (
                seq bigserial PRIMARY KEY,
                campaign_id text NOT NULL,
                node_id text NOT NULL,
                status bigint NOT NULL,
                message text NOT NULL,
                result_rows text NOT NULL,
                received_at double precision NOT NULL,
                UNIQUE (campaign_id, node_id)
            )
            """,
            "CREATE INDEX gateway_campaigns_active ON gateway_campaigns (expires_at) WHERE cancelled_at IS NULL",
            "CREATE INDEX gateway_nodes_enrolled_at ON gateway_nodes (enrolled_at)",
            "CREATE INDEX gateway_nodes_revoked_at ON gateway_nodes (revoked_at)",
        ]),
        // Campaign targeting by certificate name (docs/admin-api.md); older gateways leave it null.
        Migration(version: 3, statements: ["ALTER TABLE gateway_nodes ADD COLUMN certificate_names text"]),
        // Carves find the campaign that asked for them by the carve_guid in a node's answers.
        Migration(version: 4, statements: ["CREATE INDEX gateway_campaign_results_node ON gateway_campaign_results (node_id)"]),
        // Carves: any gateway may receive any block of one (PostgresCarveStore).
        Migration(version: 5, statements: [
            """
            CREATE TABLE gateway_carves (
                id text PRIMARY KEY,
                session_id text NOT NULL UNIQUE,
                node_id text NOT NULL,
                host_identifier text NOT NULL,
                carve_guid text NOT NULL,
                request_id text NOT NULL,
                campaign_id text,
                path text,
                block_count bigint NOT NULL,
                block_size bigint NOT NULL,
                size bigint NOT NULL,
                started_at double precision NOT NULL,
                state text NOT NULL,
                completed_at double precision,
                sha256 text,
                compressed boolean NOT NULL DEFAULT false,
                error text
            )
            """,
            "CREATE INDEX gateway_carves_node_guid ON gateway_carves (node_id, carve_guid)",
            """
            CREATE TABLE gateway_carve_blocks (
                carve_id text NOT NULL,
                block_id bigint NOT NULL,
                data bytea NOT NULL,
                PRIMARY KEY (carve_id, block_id)
            )
            """,
        ]),
    ]

    /// The advisory lock migrations hold ("osqgw" and 1): one key per purpose in a shared database.
    static let migrationLock: Int64 = 0x6F73_7167_7700_0001

    /// Applies what is missing, holding the lock on one connection.
    /// - Throws: when the database cannot be reached within a minute or a migration fails.
    static func migrate(_ pool: PostgresPool) async throws {
        let client = pool.client
        let logger = pool.logger
        try await pool.withTimeLimit(.seconds(60)) {
            try await client.withConnection { connection in
                // The connection's statement_timeout is the query time; waiting for another
                // gateway's migrations and running them may take the whole minute. RESET (back to
                // the connection's own setting) before it returns to the pool.
                _ = try await connection.query("SET statement_timeout = 60000", logger: logger).collect()
                _ = try await connection.query("SELECT pg_advisory_lock(\(Self.migrationLock))", logger: logger).collect()
                do {
                    try await Self.applyMigrations(on: connection, logger: logger)
                } catch {
                    _ = try? await connection.query("SELECT pg_advisory_unlock(\(Self.migrationLock))", logger: logger).collect()
                    _ = try? await connection.query("RESET statement_timeout", logger: logger).collect()
                    throw error
                }
                _ = try await connection.query("SELECT pg_advisory_unlock(\(Self.migrationLock))", logger: logger).collect()
                _ = try await connection.query("RESET statement_timeout", logger: logger).collect()
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
        for migration in Self.migrations where !applied.contains(migration.version) {
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
}
