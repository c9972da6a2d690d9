import Foundation
import Logging
import PostgresNIO
import Support

/// Campaigns in the PostgreSQL database the gateways share (issue 12), beside their nodes: the same
/// `CampaignStore` as `SQLiteCampaignStore`, the same columns (`result_rows` for SQLite's `rows`),
/// in the tables of `PostgresSchema` version 2, through the node store's pool.
///
/// Any gateway may create a campaign, mark a node's work sent or store its answer: `markSent` only
/// moves work that is still pending (so a node is asked once, whichever gateway it polls), and an
/// answer is inserted with `ON CONFLICT DO NOTHING` (an agent resending a write, to the same
/// gateway or another, is stored once). Times are `double precision` seconds since 1970 as in the
/// node store; host identifiers sort in byte order (`COLLATE "C"`), as SQLite sorts them.
///
/// Creating and cancelling a campaign notify the other gateways (`ControlMessage`); marking work
/// sent, answers and expiry never do (every gateway expires campaigns by their own clock).
final class PostgresCampaignStore: CampaignStore {
    private let pool: PostgresPool

    init(pool: PostgresPool) {
        self.pool = pool
    }

    private static let campaignColumns = "id, name, sql, target, created_at, expires_at, cancelled_at"

    func create(_ campaign: Campaign, nodes: [CampaignNode]) async throws {
        let target = String(decoding: campaign.target.json.canonicalJSON(), as: UTF8.self)
        let ids = nodes.map(\.nodeID)
        let hosts = nodes.map(\.hostIdentifier)
        let states = nodes.map(\.state.rawValue)
        try await pool.transaction { connection, logger in
            _ = try await connection.query("""
                INSERT INTO gateway_campaigns (\(unescaped: Self.campaignColumns)) VALUES (
                    \(campaign.id), \(campaign.name), \(campaign.sql), \(target), \(campaign.createdAt.timeIntervalSince1970),
                    \(campaign.expiresAt.timeIntervalSince1970), \(campaign.cancelledAt?.timeIntervalSince1970))
                """, logger: logger).collect()
            // One statement for every targeted node, however many.
            _ = try await connection.query("""
                INSERT INTO gateway_campaign_nodes (campaign_id, node_id, host_identifier, state)
                SELECT \(campaign.id), n.node_id, n.host_identifier, n.state
                FROM unnest(\(ids)::text[], \(hosts)::text[], \(states)::text[]) AS n(node_id, host_identifier, state)
                """, logger: logger).collect()
            try await Self.announce(campaign.id, on: connection, logger: logger)
        }
    }

    /// Tells the other gateways that campaign `id` changed, as the transaction commits
    /// (`PostgresControlChannel` loads it into their index, or drops it from there).
    private static func announce(_ id: String, on connection: PostgresConnection, logger: Logger) async throws {
        let payload = ControlMessage.campaignChanged(id).payload
        _ = try await connection.query("SELECT pg_notify(\(ControlMessage.channel), \(payload))", logger: logger).collect()
    }

    func campaigns() async throws -> [Campaign] {
        try await pool.rows("SELECT \(unescaped: Self.campaignColumns) FROM gateway_campaigns ORDER BY created_at DESC, id")
            .map(Self.campaign)
    }

    func campaigns(activeAt date: Date) async throws -> [Campaign] {
        try await pool.rows("""
            SELECT \(unescaped: Self.campaignColumns) FROM gateway_campaigns
            WHERE cancelled_at IS NULL AND expires_at > \(date.timeIntervalSince1970)
            ORDER BY created_at DESC, id
            """).map(Self.campaign)
    }

    func campaign(id: String) async throws -> Campaign? {
        try await pool.rows("SELECT \(unescaped: Self.campaignColumns) FROM gateway_campaigns WHERE id = \(id)")
            .first.map(Self.campaign)
    }

    func nodes(of campaignID: String) async throws -> [CampaignNode] {
        try await pool.rows("""
            SELECT node_id, host_identifier, state, sent_at, answered_at, status, message FROM gateway_campaign_nodes
            WHERE campaign_id = \(campaignID) ORDER BY host_identifier COLLATE "C", node_id COLLATE "C"
            """).map { row in
            let (nodeID, host, state, sentAt, answeredAt, status, message) =
                try row.decode((String, String, String, Double?, Double?, Int?, String?).self)
            return CampaignNode(
                nodeID: nodeID, hostIdentifier: host, state: CampaignNodeState(rawValue: state) ?? .pending,
                sentAt: sentAt.map(Date.init(timeIntervalSince1970:)), answeredAt: answeredAt.map(Date.init(timeIntervalSince1970:)),
                status: status, message: message)
        }
    }

    func answers(of campaignID: String) async throws -> [CampaignAnswer] {
        try await pool.rows("""
            SELECT campaign_id, node_id, status, message, result_rows, received_at FROM gateway_campaign_results
            WHERE campaign_id = \(campaignID) ORDER BY seq
            """).map(Self.answer)
    }

    func answers(from nodeID: String, mentioning text: String) async throws -> [CampaignAnswer] {
        try await pool.rows("""
            SELECT campaign_id, node_id, status, message, result_rows, received_at FROM gateway_campaign_results
            WHERE node_id = \(nodeID) AND strpos(result_rows, \(text)) > 0 ORDER BY seq
            """).map(Self.answer)
    }

    private static func answer(_ row: PostgresRow) throws -> CampaignAnswer {
        let (campaignID, nodeID, status, message, rows, receivedAt) = try row.decode((String, String, Int, String, String, Double).self)
        return CampaignAnswer(
            campaignID: campaignID, nodeID: nodeID, status: status, message: message, rows: rows,
            receivedAt: Date(timeIntervalSince1970: receivedAt))
    }

    func stateCounts() async throws -> [String: [CampaignNodeState: Int]] {
        var counts: [String: [CampaignNodeState: Int]] = [:]
        for row in try await pool.rows("SELECT campaign_id, state, count(*)::bigint FROM gateway_campaign_nodes GROUP BY campaign_id, state") {
            let (id, state, n) = try row.decode((String, String, Int64).self)
            if let state = CampaignNodeState(rawValue: state) { counts[id, default: [:]][state] = Int(n) }
        }
        return counts
    }

    func markSent(_ campaignIDs: [String], node: String, at date: Date) async throws -> [String] {
        guard !campaignIDs.isEmpty else { return [] }
        let rows = try await pool.rows("""
            UPDATE gateway_campaign_nodes SET state = 'sent', sent_at = \(date.timeIntervalSince1970)
            WHERE campaign_id = ANY(\(campaignIDs)::text[]) AND node_id = \(node) AND state = 'pending'
            RETURNING campaign_id
            """)
        let marked = Set(try rows.map { try $0.decode(String.self) })
        return campaignIDs.filter { marked.contains($0) }
    }

    /// One statement for the whole write: the answers not stored yet are inserted, and their nodes
    /// move from pending or sent to answered or failed, or nothing happens at all.
    func record(_ answers: [CampaignAnswer]) async throws -> [CampaignAnswer] {
        guard !answers.isEmpty else { return [] }
        let rows = try await pool.rows("""
            WITH inserted AS (
                INSERT INTO gateway_campaign_results (campaign_id, node_id, status, message, result_rows, received_at)
                SELECT * FROM unnest(
                    \(answers.map(\.campaignID))::text[], \(answers.map(\.nodeID))::text[], \(answers.map(\.status))::int8[],
                    \(answers.map(\.message))::text[], \(answers.map(\.rows))::text[], \(answers.map(\.receivedAt.timeIntervalSince1970))::float8[])
                ON CONFLICT (campaign_id, node_id) DO NOTHING
                RETURNING campaign_id, node_id, status, message, received_at
            ), moved AS (
                UPDATE gateway_campaign_nodes AS n
                SET state = CASE WHEN inserted.status <> 0 THEN 'failed' ELSE 'answered' END,
                    answered_at = inserted.received_at, status = inserted.status, message = inserted.message
                FROM inserted
                WHERE n.campaign_id = inserted.campaign_id AND n.node_id = inserted.node_id AND n.state IN ('pending', 'sent')
            )
            SELECT campaign_id, node_id FROM inserted
            """)
        var stored = Set<[String]>()
        for row in rows {
            let (campaignID, nodeID) = try row.decode((String, String).self)
            stored.insert([campaignID, nodeID])
        }
        // The first of two answers for the same campaign and node in one write is the one stored.
        var new: [CampaignAnswer] = []
        for answer in answers where stored.remove([answer.campaignID, answer.nodeID]) != nil {
            new.append(answer)
        }
        return new
    }

    func cancel(_ id: String, at date: Date) async throws {
        try await pool.transaction { connection, logger in
            _ = try await connection.query(
                "UPDATE gateway_campaigns SET cancelled_at = \(date.timeIntervalSince1970) WHERE id = \(id) AND cancelled_at IS NULL",
                logger: logger).collect()
            _ = try await connection.query(
                "UPDATE gateway_campaign_nodes SET state = 'cancelled' WHERE campaign_id = \(id) AND state IN ('pending', 'sent')",
                logger: logger).collect()
            try await Self.announce(id, on: connection, logger: logger)
        }
    }

    func expire(_ id: String) async throws {
        try await pool.rows("UPDATE gateway_campaign_nodes SET state = 'expired' WHERE campaign_id = \(id) AND state IN ('pending', 'sent')")
    }

    private static func campaign(_ row: PostgresRow) throws -> Campaign {
        let (id, name, sql, target, createdAt, expiresAt, cancelledAt) =
            try row.decode((String, String?, String, String, Double, Double, Double?).self)
        let json = (try? JSONValue(parsing: Array(target.utf8))) ?? .object(JSONObject())
        return Campaign(
            id: id, name: name, sql: sql, target: CampaignTarget(json: json),
            createdAt: Date(timeIntervalSince1970: createdAt), expiresAt: Date(timeIntervalSince1970: expiresAt),
            cancelledAt: cancelledAt.map(Date.init(timeIntervalSince1970:)))
    }
}
