import Foundation
import PostgresNIO
import Support
import Testing
@testable import Gateway

/// `NodeStoreCopy` from SQLite into every store kind: every column arrives, a rerun copies nothing,
/// a differing row is refused unless forced, and last_seen alone is never a difference.
@Suite struct NodeStoreCopyTests {
    static let t0 = Date(timeIntervalSince1970: 1_700_000_000.125)

    func node(_ name: String, hostKey: String? = nil, certificate: String? = nil) -> NodeRecord {
        NodeRecord(
            id: "id-\(name)", keyHash: Array(NodeKey.hash("key-\(name)")), hostKey: hostKey ?? "instance-\(name)",
            hostIdentifier: "host-\(name)", platformType: "linux",
            hostDetails: #"{"osquery_info":{"version":"5.23.1"},"system_info":{"hostname":"\#(name)"}}"#,
            secretName: certificate == nil ? "default" : nil, certificateFingerprint: certificate, enrolledAt: Self.t0,
            lastSeen: Self.t0.addingTimeInterval(30))
    }

    /// Five nodes covering every column: a certificate-bound one, a revoked one, one with a sealed
    /// upstream key, one without a host key, one never seen.
    func source() async throws -> SQLiteNodeStore {
        let store = try SQLiteNodeStore(path: makeTemporaryDirectory("copy-source") + "/nodes.sqlite")
        var bound = node("bound", certificate: "ab12")
        bound.upstreamKey = [0, 1, 2, 255]
        let revoked = node("revoked")
        var hostless = node("hostless")
        hostless.hostKey = nil
        var unseen = node("unseen")
        unseen.lastSeen = nil
        for record in [bound, revoked, hostless, unseen, node("plain")] { _ = try await store.save(record) }
        try await store.revoke(revoked, at: Self.t0.addingTimeInterval(60))
        return store
    }

    /// Runs `body` with a fresh store of `kind` that can take copies.
    func withDestination(_ kind: StoreKind, _ body: (any BulkNodeStore) async throws -> Void) async throws {
        try await kind.withStore { (store: any NodeStore) async throws in
            try await body(try #require(store as? any BulkNodeStore))
        }
    }

    @Test(arguments: StoreKind.available)
    func everyColumnArrivesAndARerunCopiesNothing(kind: StoreKind) async throws {
        let source = try await source()
        try await withDestination(kind) { destination in
            // Pages of two: the last page is short, and paging by id must miss nothing.
            let copy = NodeStoreCopy(pageSize: 2)
            var pages = 0
            let first = try await copy.run(from: source, to: destination) { _ in pages += 1 }
            #expect(first.summary == "nodes: 5 read, 5 copied, 0 already there, 0 overwritten, 0 refused")
            #expect(pages == 3)
            let copied = try await destination.allNodes()
            let original = try await source.allNodes()
            #expect(copied == original)
            #expect(copied.contains { $0.revokedAt == Self.t0.addingTimeInterval(60) && $0.id == "id-revoked" })
            #expect(copied.contains { $0.upstreamKey == [0, 1, 2, 255] && $0.certificateFingerprint == "ab12" })

            let second = try await copy.run(from: source, to: destination)
            #expect(second.summary == "nodes: 5 read, 0 copied, 5 already there, 0 overwritten, 0 refused")
            #expect(try await destination.allNodes() == original)
        }
    }

    @Test(arguments: StoreKind.available)
    func aDifferingOrTakenNodeIsRefusedUnlessForced(kind: StoreKind) async throws {
        let source = try await source()
        try await withDestination(kind) { destination in
            // The destination changed "plain", and "unseen"'s host enrolled there under another id.
            var changed = node("plain")
            changed.hostIdentifier = "renamed"
            var other = node("elsewhere", hostKey: "instance-unseen")
            other.id = "id-other"
            _ = try await destination.save(changed)
            _ = try await destination.save(other)

            let refused = try await NodeStoreCopy().run(from: source, to: destination)
            #expect(refused.summary == "nodes: 5 read, 3 copied, 0 already there, 0 overwritten, 2 refused")
            #expect(refused.refused == [
                .init(id: "id-plain", hostIdentifier: "host-plain", reason: .differs),
                .init(id: "id-unseen", hostIdentifier: "host-unseen", reason: .taken),
            ])
            #expect(try await destination.node(id: "id-plain") == changed)
            #expect(try await destination.node(id: "id-other") == other)

            let forced = try await NodeStoreCopy(force: true).run(from: source, to: destination)
            #expect(forced.summary == "nodes: 5 read, 0 copied, 3 already there, 2 overwritten, 0 refused")
            // The source wins: the taken host's other node is gone, and the stores are alike.
            #expect(try await destination.node(id: "id-other") == nil)
            #expect(try await destination.allNodes() == (try await source.allNodes()))
        }
    }

    @Test(arguments: StoreKind.available)
    func theLaterLastSeenIsKeptWithoutAConflict(kind: StoreKind) async throws {
        let source = try await source()
        try await withDestination(kind) { destination in
            var earlier = node("plain")
            earlier.lastSeen = Self.t0
            var later = node("bound", certificate: "ab12")
            later.upstreamKey = [0, 1, 2, 255]
            later.lastSeen = Self.t0.addingTimeInterval(3_600)
            _ = try await destination.save(earlier)
            _ = try await destination.save(later)

            let counts = try await NodeStoreCopy().run(from: source, to: destination)
            #expect(counts.summary == "nodes: 5 read, 3 copied, 2 already there, 0 overwritten, 0 refused")
            #expect(try await destination.node(id: "id-plain")?.lastSeen == Self.t0.addingTimeInterval(30))
            #expect(try await destination.node(id: "id-bound")?.lastSeen == Self.t0.addingTimeInterval(3_600))
        }
    }
}

/// The real `osquery-gateway store copy` between a gateway on SQLite and one on PostgreSQL.
@Suite(.enabled(if: gatewayBinaryBuilt && StoreKind.postgresURL != nil, "needs the built binary and POSTGRES_URL"))
struct StoreCopyCommandTests {
    static let config = #"{"options":{"logger_tls_period":5},"schedule":{"uptime":{"interval":60,"query":"SELECT * FROM uptime;"}}}"#

    @Test func agentsEnrolledOnSQLiteKeepWorkingOnPostgreSQLWithoutEnrollingAgain() async throws {
        try await StoreKind.withDatabase { endpoint in
            let gateway = try TestGateway()
            try await gateway.start()
            var enrolled: [(host: String, instance: String, key: String)] = []
            for _ in 0..<3 {
                try await gateway.withAgent { agent in
                    let reply = try await agent.enroll()
                    let key = try #require(agent.nodeKey)
                    #expect(reply.body == #"{"node_key":"\#(key)","node_invalid":false}"#)
                    #expect(try await agent.config().body == Self.config)
                    enrolled.append((agent.hostIdentifier, agent.instanceID, key))
                }
            }
            try await gateway.stop()
            guard case .sqlite(let sqlite) = gateway.configuration.nodeStore else {
                Issue.record("the test gateway should start on SQLite")
                return
            }
            // The third node is revoked before the move: it must stay revoked after it.
            let source = try SQLiteNodeStore(path: sqlite.path)
            let third = try #require(try await source.allNodes().first { $0.hostIdentifier == enrolled[2].host })
            try await source.revoke(third, at: Date(timeIntervalSince1970: 1_772_546_706))
            let original = try await source.allNodes()
            #expect(original.allSatisfy { $0.lastSeen != nil }, "the gateway flushed last_seen when it stopped")

            let first = try await GatewayRun.run(["store", "copy", "--from", sqlite.path, "--to", endpoint.testURL])
            #expect(first.status == 0, "\(first.errors)")
            #expect(first.output.contains("copying 3 nodes from \(sqlite.path) to \(endpoint)\n"), "\(first.output)")
            #expect(first.output.contains("\nnodes: 3 read, 3 copied, 0 already there, 0 overwritten, 0 refused\nPostgreSQL now holds 3 nodes\n"),
                    "\(first.output)")
            let again = try await GatewayRun.run(["store", "copy", "--from", sqlite.path, "--to", endpoint.testURL])
            #expect(again.status == 0, "\(again.errors)")
            #expect(again.output.contains("\nnodes: 3 read, 0 copied, 3 already there, 0 overwritten, 0 refused\n"), "\(again.output)")

            let shared = try await PostgresNodeStore.open(.init(endpoint: endpoint), logger: StoreKind.quietLogger)
            #expect(try await shared.allNodes() == original)

            // A row changed in PostgreSQL is refused (exit 1, named), then replaced with --force; the
            // configuration-file form of --from names the same SQLite file.
            let admin = PostgresPool(endpoint: endpoint, logger: StoreKind.quietLogger)
            try await admin.rows("UPDATE gateway_nodes SET host_identifier = 'renamed' WHERE id = \(third.id)")
            await admin.shutdown()
            let fromConfig = gateway.directory + "/copy-from.yaml"
            try Data((minimalConfigurationYAML + "node_store: { sqlite: \"\(sqlite.path)\" }\n").utf8)
                .write(to: URL(fileURLWithPath: fromConfig))
            let refused = try await GatewayRun.run(["store", "copy", "--from", fromConfig, "--to", endpoint.testURL])
            #expect(refused.status == 1)
            #expect(refused.output.contains("\nnodes: 3 read, 0 copied, 2 already there, 0 overwritten, 1 refused\n"), "\(refused.output)")
            #expect(refused.errors.contains(
                "1 nodes were left as PostgreSQL holds them; rerun with --force to replace them with the SQLite rows:\n  \(third.id) (\(third.hostIdentifier)): differs in the destination\n"),
                "\(refused.errors)")
            let forced = try await GatewayRun.run(["store", "copy", "--from", fromConfig, "--to", endpoint.testURL, "--force"])
            #expect(forced.status == 0, "\(forced.errors)")
            #expect(forced.output.contains("\nnodes: 3 read, 0 copied, 2 already there, 1 overwritten, 0 refused\n"), "\(forced.output)")
            #expect(try await shared.allNodes() == original)

            // The same agents, their keys unchanged, on a gateway that now keeps nodes in PostgreSQL.
            gateway.configuration.nodeStore = .postgres(.init(endpoint: endpoint))
            try await gateway.start()
            do {
                for (index, node) in enrolled.enumerated() {
                    try await gateway.withAgent { agent in
                        agent.hostIdentifier = node.host
                        agent.instanceID = node.instance
                        agent.nodeKey = node.key
                        let config = try await agent.config().body
                        if index == 2 {
                            #expect(config == #"{"error":"node key revoked","node_invalid":true}"#)
                            return
                        }
                        #expect(config == Self.config)
                        let logged = try await agent.log("result", [resultItem("moved", host: node.host, columns: ["n": "\(index)"])]).body
                        #expect(logged == "{}")
                        let read = try await agent.distributedRead().body
                        #expect(read == #"{"queries":{}}"#)
                    }
                }
                // Nobody enrolled again: the same three nodes, the same ids.
                #expect(try await shared.allNodes().map(\.id) == original.map(\.id))
            } catch {
                try? await gateway.stop()
                await shared.shutdown()
                throw error
            }
            try await gateway.stop()
            await shared.shutdown()
        }
    }
}
