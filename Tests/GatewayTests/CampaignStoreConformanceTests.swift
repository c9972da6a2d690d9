import Foundation
import Support
import Testing
@testable import Gateway

extension StoreKind {
    /// Runs `body` with a fresh, empty campaign store of this kind: a SQLite file, or the campaign
    /// tables of a new PostgreSQL database through a node store's pool (as a gateway wires them).
    func withCampaignStore(_ body: (any CampaignStore) async throws -> Void) async throws {
        switch self {
        case .sqlite:
            try await body(try SQLiteCampaignStore(path: makeTemporaryDirectory("campaigns") + "/campaigns.sqlite"))
        case .postgres:
            try await Self.withDatabase { endpoint in
                let nodes = try await PostgresNodeStore.open(.init(endpoint: endpoint), logger: Self.quietLogger)
                do {
                    try await body(PostgresCampaignStore(pool: nodes.pool))
                } catch {
                    await nodes.shutdown()
                    throw error
                }
                await nodes.shutdown()
            }
        }
    }
}

/// One suite, every campaign store: what `CampaignStore` promises (targets fixed at creation, work
/// sent once, answers stored once however often they are resent, cancellation and expiry of the
/// outstanding nodes only) holds the same for SQLite and PostgreSQL.
@Suite struct CampaignStoreConformanceTests {
    /// Fractions a double keeps exactly, so equality does not depend on how a store keeps times.
    static let t0 = Date(timeIntervalSince1970: 1_700_000_000.125)

    func campaign(_ id: String, createdAt: Date = CampaignStoreConformanceTests.t0, lifetime: TimeInterval = 600,
                  name: String? = nil) -> Campaign {
        Campaign(
            id: id, name: name, sql: "SELECT * FROM uptime WHERE note = 'ünïcode \"q\"';",
            target: CampaignTarget(hosts: ["web-*"], platforms: ["linux"]), createdAt: createdAt,
            expiresAt: createdAt.addingTimeInterval(lifetime))
    }

    func pending(_ node: String, host: String) -> CampaignNode {
        CampaignNode(nodeID: node, hostIdentifier: host, state: .pending)
    }

    func answer(_ campaign: String, _ node: String, status: Int = 0, message: String = "", rows: String = #"[{"a":"1"}]"#,
                at seconds: TimeInterval = 10) -> CampaignAnswer {
        CampaignAnswer(campaignID: campaign, nodeID: node, status: status, message: message, rows: rows,
                       receivedAt: Self.t0.addingTimeInterval(seconds))
    }

    @Test(arguments: StoreKind.available)
    func aCampaignReadsBackWithItsTargetAndNodesByHost(kind: StoreKind) async throws {
        try await kind.withCampaignStore { (store: any CampaignStore) async throws in
            let created = campaign("gw-a", name: "probe")
            try await store.create(created, nodes: [pending("n2", host: "web-2"), pending("n1", host: "web-1"), pending("n0", host: "Web-3")])
            #expect(try await store.campaigns() == [created])
            #expect(try await store.campaign(id: "gw-a") == created)
            #expect(try await store.campaign(id: "gw-none") == nil)
            // Byte order: upper case before lower case, as SQLite sorts.
            #expect(try await store.nodes(of: "gw-a") == [pending("n0", host: "Web-3"), pending("n1", host: "web-1"), pending("n2", host: "web-2")])
            #expect(try await store.nodes(of: "gw-none") == [])
            #expect(try await store.answers(of: "gw-a") == [])
            #expect(try await store.stateCounts() == ["gw-a": [.pending: 3]])
        }
    }

    @Test(arguments: StoreKind.available)
    func campaignsAreListedNewestFirstAndTheActiveOnesApart(kind: StoreKind) async throws {
        try await kind.withCampaignStore { (store: any CampaignStore) async throws in
            let old = campaign("gw-old", createdAt: Self.t0, lifetime: 60)
            let cancelled = campaign("gw-cancelled", createdAt: Self.t0.addingTimeInterval(100))
            let active = campaign("gw-active", createdAt: Self.t0.addingTimeInterval(200))
            for created in [old, cancelled, active] { try await store.create(created, nodes: [pending("n1", host: "web-1")]) }
            try await store.cancel("gw-cancelled", at: Self.t0.addingTimeInterval(150))
            var cancelledNow = cancelled
            cancelledNow.cancelledAt = Self.t0.addingTimeInterval(150)
            #expect(try await store.campaigns() == [active, cancelledNow, old])
            #expect(try await store.campaigns(activeAt: Self.t0.addingTimeInterval(300)) == [active])
            // Active means neither cancelled nor expired; creation time does not count.
            #expect(try await store.campaigns(activeAt: Self.t0.addingTimeInterval(30)) == [active, old])
            #expect(try await store.campaigns(activeAt: active.expiresAt) == [])
        }
    }

    @Test(arguments: StoreKind.available)
    func workIsMarkedSentOnceWhoeverAsks(kind: StoreKind) async throws {
        try await kind.withCampaignStore { (store: any CampaignStore) async throws in
            try await store.create(campaign("gw-a"), nodes: [pending("n1", host: "web-1"), pending("n2", host: "web-2")])
            try await store.create(campaign("gw-b"), nodes: [pending("n1", host: "web-1")])
            let sentAt = Self.t0.addingTimeInterval(5)
            #expect(try await store.markSent(["gw-b", "gw-a", "gw-none"], node: "n1", at: sentAt) == ["gw-b", "gw-a"])
            // A second gateway holding the same work in memory finds nothing left to send.
            #expect(try await store.markSent(["gw-a", "gw-b"], node: "n1", at: sentAt.addingTimeInterval(1)) == [])
            #expect(try await store.markSent([], node: "n2", at: sentAt) == [])
            #expect(try await store.nodes(of: "gw-a") == [
                CampaignNode(nodeID: "n1", hostIdentifier: "web-1", state: .sent, sentAt: sentAt),
                pending("n2", host: "web-2"),
            ])
            #expect(try await store.stateCounts() == ["gw-a": [.sent: 1, .pending: 1], "gw-b": [.sent: 1]])
        }
    }

    @Test(arguments: StoreKind.available)
    func aResentAnswerIsStoredOnceAndTheFirstWins(kind: StoreKind) async throws {
        try await kind.withCampaignStore { (store: any CampaignStore) async throws in
            try await store.create(campaign("gw-a"), nodes: [pending("n1", host: "web-1"), pending("n2", host: "web-2"), pending("n3", host: "web-3")])
            _ = try await store.markSent(["gw-a"], node: "n1", at: Self.t0.addingTimeInterval(5))
            let first = answer("gw-a", "n1", rows: #"[{"v":"first"}]"#)
            #expect(try await store.record([first]) == [first])
            let failed = answer("gw-a", "n2", status: 1, message: "distributed query is denylisted", rows: "[]", at: 20)
            let resent = answer("gw-a", "n1", rows: #"[{"v":"second"}]"#, at: 30)
            // A resend and, in the same write, the same answer twice: each pair is stored once.
            let twice = answer("gw-a", "n3", rows: #"[{"v":"once"}]"#, at: 40)
            var again = twice
            again.rows = #"[{"v":"twice"}]"#
            #expect(try await store.record([resent, failed, twice, again]) == [failed, twice])
            #expect(try await store.record([]) == [])
            #expect(try await store.answers(of: "gw-a") == [first, failed, twice])
            #expect(try await store.nodes(of: "gw-a") == [
                CampaignNode(nodeID: "n1", hostIdentifier: "web-1", state: .answered, sentAt: Self.t0.addingTimeInterval(5),
                             answeredAt: first.receivedAt, status: 0, message: ""),
                CampaignNode(nodeID: "n2", hostIdentifier: "web-2", state: .failed, answeredAt: failed.receivedAt, status: 1,
                             message: "distributed query is denylisted"),
                CampaignNode(nodeID: "n3", hostIdentifier: "web-3", state: .answered, answeredAt: twice.receivedAt, status: 0, message: ""),
            ])
            #expect(try await store.stateCounts() == ["gw-a": [.answered: 2, .failed: 1]])
        }
    }

    /// How a carve finds the campaign that asked for it: a node's answers whose rows hold its carve_guid.
    @Test(arguments: StoreKind.available)
    func aNodesAnswersAreFoundByTextInTheirRows(kind: StoreKind) async throws {
        try await kind.withCampaignStore { (store: any CampaignStore) async throws in
            try await store.create(campaign("gw-a"), nodes: [pending("n1", host: "web-1"), pending("n2", host: "web-2")])
            try await store.create(campaign("gw-b"), nodes: [pending("n1", host: "web-1")])
            let carve = answer("gw-a", "n1", rows: #"[{"carve_guid":"9b1e-guid","path":"/etc/hosts"}]"#)
            let other = answer("gw-a", "n2", rows: #"[{"carve_guid":"9b1e-guid"}]"#, at: 20)
            let unrelated = answer("gw-b", "n1", rows: #"[{"carve_guid":"another"}]"#, at: 30)
            _ = try await store.record([carve, other, unrelated])
            #expect(try await store.answers(from: "n1", mentioning: "9b1e-guid") == [carve])
            #expect(try await store.answers(from: "n2", mentioning: "9b1e-guid") == [other])
            #expect(try await store.answers(from: "n1", mentioning: "absent") == [])
        }
    }

    @Test(arguments: StoreKind.available)
    func cancellingEndsOnlyTheOutstandingNodesAndKeepsTheFirstTime(kind: StoreKind) async throws {
        try await kind.withCampaignStore { (store: any CampaignStore) async throws in
            try await store.create(campaign("gw-a"), nodes: [pending("n1", host: "web-1"), pending("n2", host: "web-2"), pending("n3", host: "web-3")])
            _ = try await store.markSent(["gw-a"], node: "n2", at: Self.t0.addingTimeInterval(5))
            let answered = answer("gw-a", "n1")
            _ = try await store.record([answered])
            try await store.cancel("gw-a", at: Self.t0.addingTimeInterval(60))
            try await store.cancel("gw-a", at: Self.t0.addingTimeInterval(90))
            #expect(try await store.campaign(id: "gw-a")?.cancelledAt == Self.t0.addingTimeInterval(60))
            #expect(try await store.nodes(of: "gw-a").map(\.state) == [.answered, .cancelled, .cancelled])
            // An answer arriving after the cancellation is kept with the results, its node stays cancelled.
            #expect(try await store.record([answer("gw-a", "n3", at: 100)]).count == 1)
            #expect(try await store.nodes(of: "gw-a").map(\.state) == [.answered, .cancelled, .cancelled])
            #expect(try await store.campaigns(activeAt: Self.t0.addingTimeInterval(70)) == [])
        }
    }

    @Test(arguments: StoreKind.available)
    func expiringEndsOnlyTheOutstandingNodes(kind: StoreKind) async throws {
        try await kind.withCampaignStore { (store: any CampaignStore) async throws in
            try await store.create(campaign("gw-a", lifetime: 60), nodes: [pending("n1", host: "web-1"), pending("n2", host: "web-2"), pending("n3", host: "web-3")])
            _ = try await store.markSent(["gw-a"], node: "n2", at: Self.t0.addingTimeInterval(5))
            _ = try await store.record([answer("gw-a", "n1", status: 2, message: "no such table")])
            try await store.expire("gw-a")
            try await store.expire("gw-a")
            #expect(try await store.nodes(of: "gw-a").map(\.state) == [.failed, .expired, .expired])
            #expect(try await store.stateCounts() == ["gw-a": [.failed: 1, .expired: 2]])
            #expect(try await store.campaign(id: "gw-a")?.cancelledAt == nil)
        }
    }
}
