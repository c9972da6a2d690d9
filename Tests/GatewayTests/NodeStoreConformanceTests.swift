import Foundation
import Logging
import PostgresNIO
import Support
import Testing
@testable import Gateway

/// The node stores a gateway can use. PostgreSQL runs when `POSTGRES_URL` is set
/// (`scripts/with-postgres.sh`, which `make test` uses); each test gets a database of its own.
enum StoreKind: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case sqlite, postgres

    var testDescription: String { rawValue }

    static var postgresURL: String? { ProcessInfo.processInfo.environment["POSTGRES_URL"] }
    /// The stores this machine can test.
    static var available: [StoreKind] { postgresURL == nil ? [.sqlite] : [.sqlite, .postgres] }

    static var quietLogger: Logger {
        var logger = Logger(label: "node-store-tests")
        logger.logLevel = .critical
        return logger
    }

    /// Runs `body` with a fresh, empty store of this kind.
    func withStore(_ body: (any NodeStore) async throws -> Void) async throws {
        switch self {
        case .sqlite:
            try await body(try SQLiteNodeStore(path: makeTemporaryDirectory("store") + "/nodes.sqlite"))
        case .postgres:
            try await Self.withDatabase { endpoint in
                let store = try await PostgresNodeStore.open(.init(endpoint: endpoint), logger: Self.quietLogger)
                do {
                    try await body(store)
                } catch {
                    await store.shutdown()
                    throw error
                }
                await store.shutdown()
            }
        }
    }

    /// A new database on the test server for `body`, dropped afterwards.
    static func withDatabase(_ body: (PostgresEndpoint) async throws -> Void) async throws {
        let admin = PostgresPool(endpoint: try PostgresEndpoint(url: postgresURL ?? ""), logger: quietLogger)
        let name = "gw_store_\(UUID().uuidString.prefix(8).lowercased())"
        var endpoint = admin.endpoint
        endpoint.database = name
        do {
            try await admin.rows("CREATE DATABASE \(unescaped: name)")
            try await body(endpoint)
        } catch {
            _ = try? await admin.rows("DROP DATABASE IF EXISTS \(unescaped: name) WITH (FORCE)")
            await admin.shutdown()
            throw error
        }
        _ = try? await admin.rows("DROP DATABASE IF EXISTS \(unescaped: name) WITH (FORCE)")
        await admin.shutdown()
    }
}

/// One suite, every store: what `NodeStore` promises (enrollment, re-enrollment, certificate
/// binding, revocation, last-seen batches, upstream keys) holds the same for SQLite and PostgreSQL.
@Suite struct NodeStoreConformanceTests {
    /// Whole milliseconds, so equality checks do not depend on how a store keeps fractions.
    static let t0 = Date(timeIntervalSince1970: 1_700_000_000.125)

    func node(_ name: String, hostKey: String? = nil, certificate: String? = nil, enrolledAt: Date = NodeStoreConformanceTests.t0,
              upstreamKey: [UInt8]? = nil) -> NodeRecord {
        NodeRecord(
            id: "id-\(name)", keyHash: Array(NodeKey.hash("key-\(name)")), hostKey: hostKey, hostIdentifier: "host-\(name)",
            platformType: "linux", hostDetails: #"{"system_info":{"hostname":"\#(name)","note":"ünïcode \"q\""}}"#,
            secretName: certificate == nil ? "default" : nil, certificateFingerprint: certificate, enrolledAt: enrolledAt,
            lastSeen: nil, upstreamKey: upstreamKey,
            certificateNames: certificate == nil ? [] : ["CN=\(name),O=osquery-gateway", name, "\(name).example"])
    }

    @Test(arguments: StoreKind.available)
    func aSavedNodeIsFoundByKeyCertificateAndID(kind: StoreKind) async throws {
        try await kind.withStore { (store: any NodeStore) async throws in
            let saved = node("a", hostKey: "instance-a", certificate: "ab12", upstreamKey: [0, 1, 2, 255])
            #expect(try await store.save(saved) == nil)
            #expect(try await store.node(keyHash: saved.keyHash) == saved)
            #expect(try await store.node(keyHash: saved.keyHash)?.certificateNames == ["CN=a,O=osquery-gateway", "a", "a.example"])
            #expect(try await store.node(certificateFingerprint: "ab12") == saved)
            #expect(try await store.node(id: saved.id) == saved)
            #expect(try await store.node(keyHash: Array(NodeKey.hash("other"))) == nil)
            #expect(try await store.node(certificateFingerprint: "cd34") == nil)
            #expect(try await store.node(id: "nobody") == nil)
            #expect(try await store.count() == 1)
        }
    }

    @Test(arguments: StoreKind.available)
    func reEnrollmentKeepsTheIDReturnsThePreviousRecordAndDropsTheOldKey(kind: StoreKind) async throws {
        try await kind.withStore { (store: any NodeStore) async throws in
            let first = node("a", hostKey: "instance-a")
            _ = try await store.save(first)
            var second = node("b", hostKey: "instance-a", enrolledAt: Self.t0.addingTimeInterval(60))
            second.hostIdentifier = "renamed"
            #expect(try await store.save(second) == first)
            second.id = first.id
            #expect(try await store.node(keyHash: second.keyHash) == second)
            #expect(try await store.node(keyHash: first.keyHash) == nil)
            #expect(try await store.count() == 1)
        }
    }

    @Test(arguments: StoreKind.available)
    func nodesWithoutAHostKeyAreNeverMerged(kind: StoreKind) async throws {
        try await kind.withStore { (store: any NodeStore) async throws in
            #expect(try await store.save(node("a")) == nil)
            #expect(try await store.save(node("b")) == nil)
            #expect(try await store.count() == 2)
        }
    }

    @Test(arguments: StoreKind.available)
    func aCertificateBoundHostIsReEnrolledOnlyByItsCertificate(kind: StoreKind) async throws {
        try await kind.withStore { (store: any NodeStore) async throws in
            let bound = node("a", hostKey: "instance-a", certificate: "ab12")
            _ = try await store.save(bound)
            await #expect(throws: NodeStoreError.boundToAnotherCertificate) {
                _ = try await store.save(node("b", hostKey: "instance-a", certificate: "cd34"))
            }
            await #expect(throws: NodeStoreError.boundToAnotherCertificate) {
                _ = try await store.save(node("c", hostKey: "instance-a"))
            }
            #expect(try await store.node(id: bound.id) == bound)
            #expect(try await store.count() == 1)
            let again = node("d", hostKey: "instance-a", certificate: "ab12", enrolledAt: Self.t0.addingTimeInterval(1))
            #expect(try await store.save(again) == bound)
        }
    }

    @Test(arguments: StoreKind.available)
    func theLatestEnrollmentOfACertificateIsTheOneFound(kind: StoreKind) async throws {
        try await kind.withStore { (store: any NodeStore) async throws in
            _ = try await store.save(node("old", certificate: "ab12"))
            let newer = node("new", certificate: "ab12", enrolledAt: Self.t0.addingTimeInterval(10))
            _ = try await store.save(newer)
            #expect(try await store.node(certificateFingerprint: "ab12") == newer)
        }
    }

    @Test(arguments: StoreKind.available)
    func revocationTouchesOnlyTheCurrentEnrollment(kind: StoreKind) async throws {
        try await kind.withStore { (store: any NodeStore) async throws in
            let first = node("a", hostKey: "instance-a")
            _ = try await store.save(first)
            let revokedAt = Self.t0.addingTimeInterval(5)
            try await store.revoke(first, at: revokedAt)
            #expect(try await store.node(id: first.id)?.revokedAt == revokedAt)
            // The host enrolls again (not revoked); a late revocation of the old key changes nothing.
            var second = node("b", hostKey: "instance-a", enrolledAt: Self.t0.addingTimeInterval(10))
            _ = try await store.save(second)
            try await store.revoke(first, at: Self.t0.addingTimeInterval(20))
            second.id = first.id
            #expect(try await store.node(id: first.id) == second)
        }
    }

    @Test(arguments: StoreKind.available)
    func lastSeenIsWrittenInBatches(kind: StoreKind) async throws {
        try await kind.withStore { (store: any NodeStore) async throws in
            let a = node("a"), b = node("b"), c = node("c")
            for record in [a, b, c] { _ = try await store.save(record) }
            try await store.recordLastSeen([:])
            let seenA = Self.t0.addingTimeInterval(100), seenB = Self.t0.addingTimeInterval(200.5)
            try await store.recordLastSeen([a.id: seenA, b.id: seenB, "unknown": Self.t0])
            #expect(try await store.node(id: a.id)?.lastSeen == seenA)
            #expect(try await store.node(id: b.id)?.lastSeen == seenB)
            #expect(try await store.node(id: c.id)?.lastSeen == nil)
            #expect(try await store.count() == 3)
        }
    }
}

/// What only the shared store has: migrations that several gateways run at once.
@Suite(.enabled(if: StoreKind.postgresURL != nil, "needs POSTGRES_URL (make test starts PostgreSQL)"))
struct PostgresNodeStoreTests {
    @Test func gatewaysStartingTogetherMigrateOnce() async throws {
        try await StoreKind.withDatabase { endpoint in
            let stores = try await withThrowingTaskGroup(of: PostgresNodeStore.self) { group in
                for _ in 0..<4 {
                    group.addTask { try await PostgresNodeStore.open(.init(endpoint: endpoint), logger: StoreKind.quietLogger) }
                }
                var stores: [PostgresNodeStore] = []
                for try await store in group { stores.append(store) }
                return stores
            }
            #expect(stores.count == 4)
            _ = try await stores[0].save(NodeRecord(
                id: "x", keyHash: [1, 2, 3], hostKey: nil, hostIdentifier: "x", platformType: "linux", hostDetails: "{}",
                secretName: nil, certificateFingerprint: nil, enrolledAt: Date(timeIntervalSince1970: 1), lastSeen: nil))
            #expect(try await stores[3].count() == 1)
            for store in stores { await store.shutdown() }
            let check = PostgresPool(endpoint: endpoint, logger: StoreKind.quietLogger)
            let versions = try await check.rows("SELECT version FROM gateway_migrations ORDER BY version").map { try $0.decode(Int32.self) }
            await check.shutdown()
            #expect(versions == PostgresSchema.migrations.map(\.version))
        }
    }

    @Test func anUnreachableDatabaseIsAnErrorNotAMissingNode() async throws {
        // Started, then the database goes away: every call throws (the authenticator's 503 path),
        // none answers "no such node".
        try await StoreKind.withDatabase { endpoint in
            var short = endpoint
            short.queryTimeout = .seconds(1)
            let store = try await PostgresNodeStore.open(.init(endpoint: short), logger: StoreKind.quietLogger)
            let admin = PostgresPool(endpoint: try PostgresEndpoint(url: StoreKind.postgresURL ?? ""), logger: StoreKind.quietLogger)
            try await admin.rows("ALTER DATABASE \(unescaped: endpoint.database ?? "") WITH ALLOW_CONNECTIONS false")
            try await admin.rows("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = \(endpoint.database ?? "")")
            await #expect(throws: (any Error).self) { _ = try await store.node(keyHash: [1, 2, 3]) }
            await #expect(throws: (any Error).self) { _ = try await store.count() }
            try await admin.rows("ALTER DATABASE \(unescaped: endpoint.database ?? "") WITH ALLOW_CONNECTIONS true")
            var recovered = false
            for _ in 0..<150 where !recovered {
                recovered = (try? await store.count()) == 0
                if !recovered { try await Task.sleep(for: .milliseconds(200)) }
            }
            #expect(recovered, "the pool reconnects once the database takes connections again")
            await store.shutdown()
            await admin.shutdown()
        }
    }
}

/// `node_store` in the configuration file.
@Suite struct NodeStoreConfigurationTests {
    let head = minimalConfigurationYAML

    @Test func postgresWithThePasswordFromTheEnvironment() throws {
        let yaml = head + """
            node_store:
              postgres: "postgres://gw:${PGPASS}@db.internal:6432/nodes"
              timeout: 2s
              pool_size: 4
            """
        let configuration = try GatewayConfiguration.parse(yaml: yaml, baseDirectory: "/etc/gw", environment: ["PGPASS": "s3cret"])
        var expected = PostgresEndpoint(host: "db.internal", port: 6432, username: "gw", password: "s3cret", database: "nodes")
        expected.queryTimeout = .seconds(2)
        expected.poolSize = 4
        #expect(configuration.nodeStore == .postgres(.init(endpoint: expected)))
    }

    @Test func statementTimeoutFollowsTheTimeoutUnlessGivenAndZeroSendsNone() throws {
        func endpoint(_ extra: String) throws -> PostgresEndpoint? {
            let yaml = head + "node_store:\n  postgres: \"postgres://gw@db.internal/nodes\"\n  timeout: 2s\n" + extra
            guard case .postgres(let store) = try GatewayConfiguration.parse(yaml: yaml, baseDirectory: "/etc/gw", environment: [:]).nodeStore else {
                return nil
            }
            return store.endpoint
        }
        #expect(try endpoint("")?.effectiveStatementTimeout == .seconds(2))
        #expect(try endpoint("  statement_timeout: 500ms\n")?.effectiveStatementTimeout == .milliseconds(500))
        #expect(try endpoint("  statement_timeout: 0s\n")?.effectiveStatementTimeout == nil)
        #expect(PostgresEndpoint.milliseconds(.milliseconds(1500)) == 1500 && PostgresEndpoint.milliseconds(.microseconds(10)) == 1)
    }

    @Test func theBackstopReloadPeriodIsAPostgresKey() throws {
        let yaml = head + """
            node_store:
              postgres: "postgres://gw@db.internal/nodes"
              reload_every: 5s
            """
        let configuration = try GatewayConfiguration.parse(yaml: yaml, baseDirectory: "/etc/gw", environment: [:])
        let endpoint = PostgresEndpoint(host: "db.internal", port: 5432, username: "gw", password: nil, database: "nodes")
        #expect(configuration.nodeStore == .postgres(.init(endpoint: endpoint, control: .init(reloadInterval: .seconds(5)))))
        let problems = try configurationProblems(head + """
            node_store:
              sqlite: nodes.sqlite
              reload_every: 5s
            """, baseDirectory: "/etc/gw")
        #expect(problems == ["line 9: node_store.reload_every: unknown key"])
        let tooShort = try configurationProblems(head + """
            node_store:
              postgres: "postgres://gw@db.internal/nodes"
              reload_every: 10ms
            """, baseDirectory: "/etc/gw")
        #expect(tooShort.count == 1)
        #expect(tooShort.first?.hasPrefix("line 9: node_store.reload_every: must be at least") == true)
    }

    @Test func problemsNameTheKeyAndLine() throws {
        let yaml = head + """
            node_store:
              sqlite: nodes.sqlite
              postgres: "mysql://db/x"
              tls: sometimes
            """
        let text = try configurationProblems(yaml, baseDirectory: "/etc/gw")
        #expect(text.contains("line 8: node_store.sqlite: give sqlite or postgres, not both"))
        #expect(text.contains("line 9: node_store.postgres: expected a URL such as postgres://user@host:5432/database"))
        #expect(text.contains("line 10: node_store.tls: expected one of disable, prefer, require, found \"sometimes\""))
    }
}
