import Foundation
import Hummingbird
import Support
import NIOCore

/// `POST /api/queries`, `GET /api/queries`, `GET /api/queries/{id}`, `POST /api/queries/{id}/cancel`
/// (docs/admin-api.md): live-query campaigns. Results are read from the store, so they are there
/// while the campaign runs and after it ends, whether or not anyone watched.
struct QueryRoutes: Sendable {
    let campaigns: CampaignService

    func register(on router: Router<AdminRequestContext>) {
        router.post("/api/queries") { request, _ -> Response in
            let body = try await request.body.collect(upTo: 1 << 20)
            let (sql, name, target, lifetime) = try Self.decodeStart(body)
            let created: (Campaign, [CampaignNode])
            do {
                created = try await self.campaigns.create(sql: sql, name: name, target: target, lifetime: lifetime)
            } catch let refusal as CampaignService.Refusal {
                throw AdminError.badRequest(refusal.description)
            } catch {
                throw AdminError.unavailable("campaign store unavailable: \(PostgresFailure.describe(error))")
            }
            return AdminResponse.object([("query", Self.summary(created.0, nodes: created.1, at: Date()))], status: .created)
        }
        router.get("/api/queries") { _, _ -> Response in
            let now = Date()
            let (all, counts) = try await self.stored { (try await self.campaigns.store.campaigns(), try await self.campaigns.store.stateCounts()) }
            return AdminResponse.object([("queries", .array(all.map { Self.summary($0, counts: counts[$0.id] ?? [:], at: now) }))])
        }
        router.get("/api/queries/:id") { _, context -> Response in
            let id = try context.parameters.require("id")
            let now = Date()
            guard let campaign = try await self.stored({ try await self.campaigns.store.campaign(id: id) }) else {
                throw AdminError.notFound("no query \(id)")
            }
            let (nodes, answers) = try await self.stored {
                (try await self.campaigns.store.nodes(of: id), try await self.campaigns.store.answers(of: id))
            }
            var rowsByNode: [String: JSONValue] = [:]
            for answer in answers {
                rowsByNode[answer.nodeID] = (try? JSONValue(parsing: Array(answer.rows.utf8))) ?? .string(answer.rows)
            }
            let nodeEntries: [JSONValue] = nodes.map { node in
                .object(JSONObject([
                    ("node_id", .string(node.nodeID)),
                    ("host_identifier", .string(node.hostIdentifier)),
                    ("state", .string(node.state(in: campaign, at: now).rawValue)),
                    ("sent_at", .optional(node.sentAt?.adminText)),
                    ("answered_at", .optional(node.answeredAt?.adminText)),
                    ("status", node.status.map(JSONValue.int) ?? .null),
                    ("message", .optional(node.message)),
                    ("rows", rowsByNode[node.nodeID] ?? .null),
                ]))
            }
            return AdminResponse.object([("query", Self.summary(campaign, nodes: nodes, at: now)), ("nodes", .array(nodeEntries))])
        }
        router.post("/api/queries/:id/cancel") { _, context -> Response in
            let id = try context.parameters.require("id")
            guard let campaign = try await self.stored({ try await self.campaigns.cancel(id) }) else {
                throw AdminError.notFound("no query \(id)")
            }
            let nodes = try await self.stored { try await self.campaigns.store.nodes(of: id) }
            return AdminResponse.object([("query", Self.summary(campaign, nodes: nodes, at: Date()))])
        }
    }

    /// `{"sql": "...", "name": "...", "all": true, "node_ids": [...], "hosts": [...], "platforms": [...],
    /// "secrets": [...], "tags": [...], "osquery_version": ">=5.10", "certificates": [...], "expires_in": "10m" | 600}`
    static func decodeStart(_ body: ByteBuffer) throws -> (String, String?, CampaignTarget, Duration?) {
        guard case .object(let object)? = try? JSONValue(parsing: body.readableBytesView) else {
            throw AdminError.badRequest("the body must be a JSON object")
        }
        guard let sql = object["sql"]?.string else { throw AdminError.badRequest("sql must be a string") }
        var name: String?
        if let value = object["name"], value != .null {
            guard let text = value.string else { throw AdminError.badRequest("name must be a string") }
            name = text
        }
        func strings(_ key: String) throws -> [String] {
            guard let value = object[key], value != .null else { return [] }
            guard case .array(let items) = value, items.allSatisfy({ $0.string != nil }) else {
                throw AdminError.badRequest("\(key) must be an array of strings")
            }
            return items.compactMap(\.string)
        }
        var all = false
        if let value = object["all"], value != .null {
            guard case .bool(let flag) = value else { throw AdminError.badRequest("all must be true or false") }
            all = flag
        }
        var osqueryVersion: String?
        if let value = object["osquery_version"], value != .null {
            guard let text = value.string else { throw AdminError.badRequest("osquery_version must be a string such as >=5.10") }
            osqueryVersion = text
        }
        let target = CampaignTarget(
            all: all, nodeIDs: try strings("node_ids"), hosts: try strings("hosts"), platforms: try strings("platforms"),
            secrets: try strings("secrets"), tags: try strings("tags"), osqueryVersion: osqueryVersion,
            certificates: try strings("certificates"))
        var lifetime: Duration?
        switch object["expires_in"] {
        case nil, .null?: break
        case .number(let text)?:
            guard let seconds = Int(text) else { throw AdminError.badRequest("expires_in must be whole seconds or a duration such as 90s") }
            lifetime = .seconds(seconds)
        case .string(let text)?:
            guard let parsed = DurationText.parse(text) else { throw AdminError.badRequest("expires_in must be a duration such as 90s, 10m or 1h") }
            lifetime = parsed
        default: throw AdminError.badRequest("expires_in must be whole seconds or a duration such as 90s")
        }
        return (sql, name, target, lifetime)
    }

    static func summary(_ campaign: Campaign, nodes: [CampaignNode], at now: Date) -> JSONValue {
        var counts: [CampaignNodeState: Int] = [:]
        for node in nodes { counts[node.state, default: 0] += 1 }
        return summary(campaign, counts: counts, at: now)
    }

    /// A campaign with how many targeted nodes are in each state (`counts` as stored; outstanding
    /// ones of an ended campaign count as expired or cancelled).
    static func summary(_ campaign: Campaign, counts stored: [CampaignNodeState: Int], at now: Date) -> JSONValue {
        var counts = stored
        let outstanding = (counts[.pending] ?? 0) + (counts[.sent] ?? 0)
        let state: String
        if campaign.cancelledAt != nil {
            state = "cancelled"
        } else if now >= campaign.expiresAt {
            // The sweep may already have stored the outstanding nodes as expired.
            state = outstanding + (counts[.expired] ?? 0) == 0 ? "done" : "expired"
        } else {
            state = outstanding == 0 ? "done" : "running"
        }
        if !campaign.isActive(at: now) && outstanding > 0 {
            counts[.pending] = nil
            counts[.sent] = nil
            counts[campaign.cancelledAt != nil ? .cancelled : .expired, default: 0] += outstanding
        }
        var countObject = JSONObject()
        for kind in CampaignNodeState.allCases { countObject[kind.rawValue] = .int(counts[kind] ?? 0) }
        return .object(JSONObject([
            ("id", .string(campaign.id)),
            ("name", .optional(campaign.name)),
            ("sql", .string(campaign.sql)),
            ("target", campaign.target.json),
            ("created_at", .string(campaign.createdAt.adminText)),
            ("expires_at", .string(campaign.expiresAt.adminText)),
            ("cancelled_at", .optional(campaign.cancelledAt?.adminText)),
            ("state", .string(state)),
            ("targeted", .int(counts.values.reduce(0, +))),
            ("counts", .object(countObject)),
        ]))
    }

    private func stored<T>(_ work: () async throws -> T) async throws -> T {
        do { return try await work() } catch let error as AdminError { throw error } catch {
            throw AdminError.unavailable("campaign store unavailable: \(PostgresFailure.describe(error))")
        }
    }
}
