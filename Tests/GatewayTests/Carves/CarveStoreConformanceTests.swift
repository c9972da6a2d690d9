import Foundation
import Support
import Testing
@testable import Gateway

extension StoreKind {
    /// Runs `body` with a fresh, empty carve store of this kind: a SQLite file, or the carve tables
    /// of a new PostgreSQL database through a node store's pool (as a gateway wires them).
    func withCarveStore(_ body: (any CarveStore) async throws -> Void) async throws {
        switch self {
        case .sqlite:
            try await body(try SQLiteCarveStore(path: makeTemporaryDirectory("carves") + "/carves.sqlite"))
        case .postgres:
            try await Self.withDatabase { endpoint in
                let nodes = try await PostgresNodeStore.open(.init(endpoint: endpoint), logger: Self.quietLogger)
                do {
                    try await body(PostgresCarveStore(pool: nodes.pool))
                } catch {
                    await nodes.shutdown()
                    throw error
                }
                await nodes.shutdown()
            }
        }
    }
}

/// One suite, every carve store: a carve reads back by id, session and guid; a block is stored
/// once however often it is resent and only while the carve receives; an ended carve drops its
/// blocks; a complete one keeps them only in the shared store, where downloads read them.
@Suite struct CarveStoreConformanceTests {
    static let t0 = Date(timeIntervalSince1970: 1_700_000_000.125)

    func carve(_ id: String, guid: String = "guid-1", startedAt: Date = CarveStoreConformanceTests.t0) -> Carve {
        Carve(id: id, sessionID: "session-\(id)", nodeID: "n1", hostIdentifier: "web-1", carveGUID: guid, requestID: "r-\(id)",
              blockCount: 3, blockSize: 4, size: 10, startedAt: startedAt)
    }

    @Test(arguments: StoreKind.available)
    func blocksAreStoredOnceAndOnlyWhileTheCarveReceives(kind: StoreKind) async throws {
        try await kind.withCarveStore { (store: any CarveStore) async throws in
            try await store.create(carve("c1"))
            try await store.create(carve("c2", guid: "guid-2", startedAt: Self.t0.addingTimeInterval(5)))
            #expect(try await store.carve(sessionID: "session-c1")?.id == "c1")
            #expect(try await store.carve(nodeID: "n1", carveGUID: "guid-2")?.id == "c2")
            #expect(try await store.carves().map(\.id) == ["c2", "c1"])
            #expect(try await store.openCount() == 2)

            let first = try await store.store(block: 1, of: "c1", data: Data("bbbb".utf8))
            #expect(first.new && first.stored == 1)
            let again = try await store.store(block: 1, of: "c1", data: Data("xxxx".utf8))
            #expect(!again.new && again.stored == 1)
            _ = try await store.store(block: 0, of: "c1", data: Data("aaaa".utf8))
            let last = try await store.store(block: 2, of: "c1", data: Data("cc".utf8))
            #expect(last.new && last.stored == 3)
            let blocks = try await store.blocks(of: "c1", from: 0, limit: 10)
            #expect(blocks.map(\.index) == [0, 1, 2])
            #expect(blocks.map { String(decoding: $0.data, as: UTF8.self) } == ["aaaa", "bbbb", "cc"])
            #expect(try await store.blocks(of: "c1", from: 1, limit: 1).map(\.index) == [1])
            #expect(try await store.carve(id: "c1")?.isAssemblable == true)
            let receiving = try await store.receivingCarves()
            #expect(Set(receiving.map(\.id)) == ["c1", "c2"])
            #expect(receiving.first { $0.id == "c1" }?.blocksReceived == 3)

            try await store.complete("c1", sha256: "ab", compressed: true, at: Self.t0.addingTimeInterval(9))
            let complete = try #require(try await store.carve(id: "c1"))
            #expect(complete.state == .complete && complete.sha256 == "ab" && complete.compressed)
            #expect(complete.completedAt == Self.t0.addingTimeInterval(9))
            #expect(try await store.blocks(of: "c1", from: 0, limit: 10).count == (store.keepsBlocksOfCompleteCarves ? 3 : 0))
            // A block resent after the carve is complete is not stored.
            #expect(try await store.store(block: 0, of: "c1", data: Data("aaaa".utf8)).new == false)

            _ = try await store.store(block: 0, of: "c2", data: Data("aaaa".utf8))
            try await store.end("c2", as: .expired, reason: "too old", at: Self.t0.addingTimeInterval(20))
            let expired = try #require(try await store.carve(id: "c2"))
            #expect(expired.state == .expired && expired.error == "too old" && expired.blocksReceived == 0)
            #expect(try await store.openCount() == 0)
            #expect(try await store.receivingCarves().isEmpty)

            try await store.link("c1", campaignID: "gw-1", path: "/etc/hosts")
            let linked = try #require(try await store.carve(id: "c1"))
            #expect(linked.campaignID == "gw-1" && linked.path == "/etc/hosts")
        }
    }
}
