import Foundation
import GRDB

/// Campaigns in their own SQLite file in `data_dir` (`campaigns.sqlite`), WAL mode through GRDB,
/// apart from the node store so that result rows, which can be large, never slow authentication.
///
/// Every answer is written before the agent hears `{}`, so results are kept whether or not anyone
/// is watching, and survive a restart. `campaign_results` is keyed by campaign and node: a resent
/// write is stored once (`INSERT OR IGNORE`).
final class SQLiteCampaignStore: CampaignStore {
    private let pool: DatabasePool

    init(path: String) throws {
        pool = try DatabasePool.gatewayFile(at: path)
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(sql: """
                CREATE TABLE campaigns (
                    id TEXT PRIMARY KEY NOT NULL,
                    name TEXT,
                    sql TEXT NOT NULL,
                    target TEXT NOT NULL,
                    created_at DOUBLE NOT NULL,
                    expires_at DOUBLE NOT NULL,
                    cancelled_at DOUBLE
                );
                CREATE TABLE campaign_nodes (
                    campaign_id TEXT NOT NULL REFERENCES campaigns(id),
                    node_id TEXT NOT NULL,
                    host_identifier TEXT NOT NULL,
                    state TEXT NOT NULL,
                    sent_at DOUBLE,
                    answered_at DOUBLE,
                    status INTEGER,
                    message TEXT,
                    PRIMARY KEY (campaign_id, node_id)
                );
                CREATE TABLE campaign_results (
                    seq INTEGER PRIMARY KEY AUTOINCREMENT,
                    campaign_id TEXT NOT NULL,
                    node_id TEXT NOT NULL,
                    status INTEGER NOT NULL,
                    message TEXT NOT NULL,
                    rows TEXT NOT NULL,
                    received_at DOUBLE NOT NULL,
                    UNIQUE (campaign_id, node_id)
                );
                """)
        }
        // Carves look up a node's answers by the carve_guid in their rows.
        migrator.registerMigration("v2-node-answers") { db in
            try db.execute(sql: "CREATE INDEX campaign_results_node ON campaign_results (node_id)")
        }
        try migrator.migrate(pool)
    }

    private static let campaignColumns = "id, name, sql, target, created_at, expires_at, cancelled_at"

    func create(_ campaign: Campaign, nodes: [CampaignNode]) async throws {
        let target = String(decoding: campaign.target.json.canonicalJSON(), as: UTF8.self)
        try await pool.write { db in
            try db.execute(
                sql: "INSERT INTO campaigns (\(Self.campaignColumns)) VALUES (?, ?, ?, ?, ?, ?, ?)",
                arguments: [campaign.id, campaign.name, campaign.sql, target, campaign.createdAt.timeIntervalSince1970,
                            campaign.expiresAt.timeIntervalSince1970, campaign.cancelledAt?.timeIntervalSince1970])
            let statement = try db.cachedStatement(
                sql: "INSERT INTO campaign_nodes (campaign_id, node_id, host_identifier, state) VALUES (?, ?, ?, ?)")
            for node in nodes {
                try statement.execute(arguments: [campaign.id, node.nodeID, node.hostIdentifier, node.state.rawValue])
            }
        }
    }

    func campaigns() async throws -> [Campaign] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT \(Self.campaignColumns) FROM campaigns ORDER BY created_at DESC, id")
                .map(Self.campaign)
        }
    }

    func campaigns(activeAt date: Date) async throws -> [Campaign] {
        try await pool.read { db in
            try Row.fetchAll(
                db,
                sql: "SELECT \(Self.campaignColumns) FROM campaigns WHERE cancelled_at IS NULL AND expires_at > ? ORDER BY created_at DESC, id",
                arguments: [date.timeIntervalSince1970]
            ).map(Self.campaign)
        }
    }

    func campaign(id: String) async throws -> Campaign? {
        try await pool.read { db in
            try Row.fetchOne(db, sql: "SELECT \(Self.campaignColumns) FROM campaigns WHERE id = ?", arguments: [id])
                .map(Self.campaign)
        }
    }

    func nodes(of campaignID: String) async throws -> [CampaignNode] {
        try await pool.read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT node_id, host_identifier, state, sent_at, answered_at, status, message FROM campaign_nodes
                    WHERE campaign_id = ? ORDER BY host_identifier, node_id
                    """,
                arguments: [campaignID]
            ).map { row in
                let state: String = row["state"]
                let sentAt: Double? = row["sent_at"]
                let answeredAt: Double? = row["answered_at"]
                return CampaignNode(
                    nodeID: row["node_id"], hostIdentifier: row["host_identifier"], state: CampaignNodeState(rawValue: state) ?? .pending,
                    sentAt: sentAt.map(Date.init(timeIntervalSince1970:)), answeredAt: answeredAt.map(Date.init(timeIntervalSince1970:)),
                    status: row["status"], message: row["message"])
            }
        }
    }

    func answers(of campaignID: String) async throws -> [CampaignAnswer] {
        try await pool.read { db in
            try Row.fetchAll(
                db,
                sql: "SELECT campaign_id, node_id, status, message, rows, received_at FROM campaign_results WHERE campaign_id = ? ORDER BY seq",
                arguments: [campaignID]
            ).map(Self.answer)
        }
    }

    private static func answer(_ row: Row) -> CampaignAnswer {
        let receivedAt: Double = row["received_at"]
        return CampaignAnswer(
            campaignID: row["campaign_id"], nodeID: row["node_id"], status: row["status"], message: row["message"],
            rows: row["rows"], receivedAt: Date(timeIntervalSince1970: receivedAt))
    }

    func answers(from nodeID: String, mentioning text: String) async throws -> [CampaignAnswer] {
        try await pool.read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT campaign_id, node_id, status, message, rows, received_at FROM campaign_results
                    WHERE node_id = ? AND instr(rows, ?) > 0 ORDER BY seq
                    """,
                arguments: [nodeID, text]
            ).map(Self.answer)
        }
    }

    func stateCounts() async throws -> [String: [CampaignNodeState: Int]] {
        try await pool.read { db in
            var counts: [String: [CampaignNodeState: Int]] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT campaign_id, state, COUNT(*) AS n FROM campaign_nodes GROUP BY campaign_id, state") {
                let id: String = row["campaign_id"]
                let state: String = row["state"]
                let n: Int = row["n"]
                if let state = CampaignNodeState(rawValue: state) { counts[id, default: [:]][state] = n }
            }
            return counts
        }
    }

    func markSent(_ campaignIDs: [String], node: String, at date: Date) async throws -> [String] {
        try await pool.write { db in
            var marked: [String] = []
            for id in campaignIDs {
                try db.execute(
                    sql: "UPDATE campaign_nodes SET state = 'sent', sent_at = ? WHERE campaign_id = ? AND node_id = ? AND state = 'pending'",
                    arguments: [date.timeIntervalSince1970, id, node])
                if db.changesCount > 0 { marked.append(id) }
            }
            return marked
        }
    }

    func record(_ answers: [CampaignAnswer]) async throws -> [CampaignAnswer] {
        guard !answers.isEmpty else { return [] }
        return try await pool.write { db in
            var new: [CampaignAnswer] = []
            for answer in answers {
                try db.execute(
                    sql: """
                        INSERT OR IGNORE INTO campaign_results (campaign_id, node_id, status, message, rows, received_at)
                        VALUES (?, ?, ?, ?, ?, ?)
                        """,
                    arguments: [answer.campaignID, answer.nodeID, answer.status, answer.message, answer.rows,
                                answer.receivedAt.timeIntervalSince1970])
                guard db.changesCount > 0 else { continue }
                new.append(answer)
                try db.execute(
                    sql: """
                        UPDATE campaign_nodes SET state = ?, answered_at = ?, status = ?, message = ?
                        WHERE campaign_id = ? AND node_id = ? AND state IN ('pending', 'sent')
                        """,
                    arguments: [(answer.failed ? CampaignNodeState.failed : .answered).rawValue, answer.receivedAt.timeIntervalSince1970,
                                answer.status, answer.message, answer.campaignID, answer.nodeID])
            }
            return new
        }
    }

    func cancel(_ id: String, at date: Date) async throws {
        try await pool.write { db in
            try db.execute(sql: "UPDATE campaigns SET cancelled_at = ? WHERE id = ? AND cancelled_at IS NULL",
                           arguments: [date.timeIntervalSince1970, id])
            try db.execute(sql: "UPDATE campaign_nodes SET state = 'cancelled' WHERE campaign_id = ? AND state IN ('pending', 'sent')",
                           arguments: [id])
        }
    }

    func expire(_ id: String) async throws {
        try await pool.write { db in
            try db.execute(sql: "UPDATE campaign_nodes SET state = 'expired' WHERE campaign_id = ? AND state IN ('pending', 'sent')",
                           arguments: [id])
        }
    }

    private static func campaign(_ row: Row) -> Campaign {
        let createdAt: Double = row["created_at"]
        let expiresAt: Double = row["expires_at"]
        let cancelledAt: Double? = row["cancelled_at"]
        let target: String = row["target"]
        let json = (try? JSONValue(parsing: Array(target.utf8))) ?? .object(JSONObject())
        return Campaign(
            id: row["id"], name: row["name"], sql: row["sql"], target: CampaignTarget(json: json),
            createdAt: Date(timeIntervalSince1970: createdAt), expiresAt: Date(timeIntervalSince1970: expiresAt),
            cancelledAt: cancelledAt.map(Date.init(timeIntervalSince1970:)))
    }
}
