import Foundation
import Support
import Testing
@testable import Gateway

/// `store copy` beyond the nodes (issue 12 item 5): an SQLite install's campaigns with their
/// answers, and its carves (a complete one from its file, one still receiving from its blocks, an
/// expired one as a record), into PostgreSQL; a second run changes nothing.
@Suite(.enabled(if: StoreKind.postgresURL != nil, "needs POSTGRES_URL (make test starts PostgreSQL)"))
struct CampaignAndCarveCopyTests {
    static let t0 = Date(timeIntervalSince1970: 1_700_000_000.125)

    @Test func campaignsKeepTheirNodesStatesAndAnswers() async throws {
        let source = try SQLiteCampaignStore(path: makeTemporaryDirectory("campaign-copy") + "/campaigns.sqlite")
        let running = Campaign(id: "gw-run", name: "users", sql: "SELECT * FROM users;", target: CampaignTarget(all: true),
                               createdAt: Self.t0, expiresAt: Self.t0.addingTimeInterval(600))
        var cancelled = Campaign(id: "gw-old", name: nil, sql: "SELECT 1;", target: CampaignTarget(all: true),
                                 createdAt: Self.t0.addingTimeInterval(-900), expiresAt: Self.t0.addingTimeInterval(-300))
        try await source.create(cancelled, nodes: [CampaignNode(nodeID: "n1", hostIdentifier: "web-1", state: .pending)])
        try await source.cancel(cancelled.id, at: Self.t0.addingTimeInterval(-600))
        cancelled.cancelledAt = Self.t0.addingTimeInterval(-600)
        try await source.create(running, nodes: ["n1", "n2", "n3"].enumerated().map {
            CampaignNode(nodeID: $1, hostIdentifier: "web-\($0 + 1)", state: .pending)
        })
        for node in ["n1", "n2"] { _ = try await source.markSent([running.id], node: node, at: Self.t0.addingTimeInterval(5)) }
        let answers = [
            CampaignAnswer(campaignID: running.id, nodeID: "n1", status: 0, message: "", rows: #"[{"uid":"0"}]"#,
                           receivedAt: Self.t0.addingTimeInterval(10)),
            CampaignAnswer(campaignID: running.id, nodeID: "n2", status: 1, message: "distributed query is denylisted", rows: "[]",
                           receivedAt: Self.t0.addingTimeInterval(11)),
        ]
        _ = try await source.record(answers)

        try await StoreKind.withDatabase { endpoint in
            let nodes = try await PostgresNodeStore.open(.init(endpoint: endpoint), logger: StoreKind.quietLogger)
            let destination = PostgresCampaignStore(pool: nodes.pool)
            let counts = try await CampaignStoreCopy().run(from: source, to: destination)
            #expect(counts.summary == "campaigns: 2 copied, 0 already there")
            #expect(try await destination.campaigns() == source.campaigns())
            #expect(try await destination.answers(of: running.id) == answers)
            // The same states, times and statuses, but for when each node was sent the query.
            let unsent = try await source.nodes(of: running.id).map { node -> CampaignNode in
                var node = node
                node.sentAt = nil
                return node
            }
            #expect(try await destination.nodes(of: running.id) == unsent)
            #expect(try await destination.nodes(of: cancelled.id).map(\.state) == [.cancelled])
            #expect(try await CampaignStoreCopy().run(from: source, to: destination).summary == "campaigns: 0 copied, 2 already there")
            await nodes.shutdown()
        }
    }

    @Test func carvesComeOverCompleteReceivingAndExpired() async throws {
        let folder = makeTemporaryDirectory("carve-copy")
        let source = try SQLiteCarveStore(path: folder + "/carves.sqlite")
        func carve(_ id: String, at offset: TimeInterval) -> Carve {
            Carve(id: id, sessionID: "session-\(id)", nodeID: "n1", hostIdentifier: "web-1", carveGUID: "guid-\(id)",
                  requestID: "r-\(id)", blockCount: 3, blockSize: 4, size: 10, startedAt: Self.t0.addingTimeInterval(offset))
        }
        let bytes = Array("0123456789".utf8)
        // Complete: assembled into its file, its blocks dropped from SQLite.
        try await source.create(carve("done", at: 0))
        for index in 0..<3 { _ = try await source.store(block: index, of: "done", data: Data(bytes[(index * 4)..<min(index * 4 + 4, 10)])) }
        try FileManager.default.createDirectory(atPath: folder + "/carves", withIntermediateDirectories: true)
        try Data(bytes).write(to: URL(fileURLWithPath: folder + "/carves/done"))
        try await source.complete("done", sha256: "sha-done", compressed: false, at: Self.t0.addingTimeInterval(20))
        try await source.link("done", campaignID: "gw-carve", path: "/etc/hosts")
        // Receiving: two of three blocks so far.
        try await source.create(carve("half", at: 30))
        _ = try await source.store(block: 0, of: "half", data: Data(bytes[0..<4]))
        _ = try await source.store(block: 2, of: "half", data: Data(bytes[8..<10]))
        // Expired, and complete with its file gone.
        try await source.create(carve("old", at: -100))
        try await source.end("old", as: .expired, reason: "carve session expired", at: Self.t0.addingTimeInterval(-50))
        try await source.create(carve("lost", at: -200))
        for index in 0..<3 { _ = try await source.store(block: index, of: "lost", data: Data(bytes[(index * 4)..<min(index * 4 + 4, 10)])) }
        try await source.complete("lost", sha256: "sha-lost", compressed: false, at: Self.t0)

        try await StoreKind.withDatabase { endpoint in
            let nodes = try await PostgresNodeStore.open(.init(endpoint: endpoint), logger: StoreKind.quietLogger)
            let destination = PostgresCarveStore(pool: nodes.pool)
            let copy = CarveStoreCopy(directory: folder + "/carves")
            let counts = try await copy.run(from: source, to: destination)
            #expect(counts.summary == "carves: 3 copied, 0 already there, 1 left out (file missing: lost)")

            let done = try #require(try await destination.carve(id: "done"))
            #expect(done.state == .complete && done.sha256 == "sha-done" && done.completedAt == Self.t0.addingTimeInterval(20))
            #expect(done.campaignID == "gw-carve" && done.path == "/etc/hosts")
            let stored = try await destination.blocks(of: "done", from: 0, limit: 10)
            #expect(stored.flatMap(\.data) == bytes)
            #expect(try await destination.blocks(of: "half", from: 0, limit: 10).map(\.index) == [0, 2])
            #expect(try await destination.carve(id: "half")?.state == .receiving)
            let old = try #require(try await destination.carve(id: "old"))
            #expect(old.state == .expired && old.error == "carve session expired")
            #expect(try await destination.carve(id: "lost") == nil)

            // Again, after the old gateway took the missing block: only the receiving carve moves.
            _ = try await source.store(block: 1, of: "half", data: Data(bytes[4..<8]))
            let again = try await copy.run(from: source, to: destination)
            #expect(again.summary == "carves: 1 copied, 2 already there, 1 left out (file missing: lost)")
            #expect(try await destination.carve(id: "half")?.isAssemblable == true)
            await nodes.shutdown()
        }
    }
}
