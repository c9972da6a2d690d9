import Foundation
import Logging
import NIOCore
import PostgresNIO
@testable import Sinks
import Support
import Testing

/// The `postgres` sink against a real PostgreSQL (started by `scripts/with-postgres.sh`, which
/// `make test` uses): records go in through the pipeline and come back out through a query.
@Suite(.enabled(if: ProcessInfo.processInfo.environment["POSTGRES_URL"] != nil, "needs POSTGRES_URL (make test starts PostgreSQL)"))
struct PostgresSinkTests {
    let url = ProcessInfo.processInfo.environment["POSTGRES_URL"] ?? ""
    var logger: Logger {
        var logger = Logger(label: "postgres-sink-tests")
        logger.logLevel = .critical
        return logger
    }

    func sink(table: String, endpoint: PostgresEndpoint? = nil, maxRecords: Int = 100) throws -> PostgresSink {
        var configuration = PostgresSink.Configuration(name: "db", endpoint: try endpoint ?? testEndpoint())
        configuration.table = table
        configuration.batching = Batching(maxRecords: maxRecords, maxBytes: 1 << 20)
        return try PostgresSink(configuration: configuration, logger: logger)
    }

    func uniqueTable() -> String { "osquery_logs_\(UUID().uuidString.prefix(8).lowercased())" }

    /// The test database, with the patience a whole suite running at once on 2 cores needs
    /// (the tests that are about time set their own limits on top).
    func testEndpoint() throws -> PostgresEndpoint {
        var endpoint = try PostgresEndpoint(url: url)
        endpoint.connectTimeout = .seconds(30)
        endpoint.queryTimeout = .seconds(30)
        return endpoint
    }

    /// Runs `body` with a pool of its own on the test database.
    func withDatabase<T: Sendable>(_ body: (PostgresPool) async throws -> T) async throws -> T {
        let pool = PostgresPool(endpoint: try testEndpoint(), logger: logger)
        do {
            let value = try await body(pool)
            await pool.shutdown()
            return value
        } catch {
            await pool.shutdown()
            throw error
        }
    }

    func count(_ table: String) async -> Int {
        let value: Int64?? = try? await withDatabase { pool in
            try await pool.rows("SELECT count(*)::bigint FROM \(unescaped: table)").first?.decode(Int64.self)
        }
        return (value ?? nil).map { Int($0) } ?? -1
    }

    /// (node, log_type, name, host_identifier, record as text), in delivery order.
    func rows(_ table: String) async throws -> [(String, String, String?, String, String)] {
        try await withDatabase { pool in
            try await pool.rows("SELECT node, log_type, name, host_identifier, record::text FROM \(unescaped: table) ORDER BY id")
                .map { try $0.decode((String, String, String?, String, String).self) }
        }
    }

    func parsed(_ json: String) throws -> NSDictionary {
        try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? NSDictionary)
    }

    @Test func recordsReadBackLineForLine() async throws {
        let table = uniqueTable()
        var sent: [LogRecord] = []
        try await withPipeline([.init(sink: try sink(table: table))]) { pipeline in
            for batch in 0..<3 {
                for node in ["a", "b"] {
                    var records = (0..<50).map { record(batch * 50 + $0, node: node) }
                    records[0].json = ByteBuffer(string: #"{"id":\#(batch * 50),"node":"\#(node)","quote":"say \"hi\"\n","snow":"\u2603 ☃","big":12345678901234567890}"#)
                    records[1] = LogRecord(kind: .status, nodeID: node, hostIdentifier: "host-\(node)", severity: 1,
                                           json: ByteBuffer(string: #"{"severity":"1","message":"status \#(batch)"}"#))
                    sent += records
                    try await pipeline.append(records)
                }
            }
            #expect(await eventually { await count(table) == 300 })
        }
        let stored = try await rows(table)
        #expect(stored.count == 300)
        for node in ["a", "b"] {
            let mine = stored.filter { $0.0 == node }
            let expected = sent.filter { $0.nodeID == node }
            #expect(mine.count == expected.count)
            for (row, record) in zip(mine, expected) {
                #expect(row.1 == record.kind.rawValue)
                #expect(row.2 == record.queryName)
                #expect(row.3 == record.hostIdentifier)
                #expect(try parsed(row.4) == parsed(String(buffer: record.json)))
            }
        }
        try await withDatabase { pool in try await pool.rows("DROP TABLE \(unescaped: table)") }
    }

    @Test func databaseDownIsARetryThenTheSameBatchIsDelivered() async throws {
        // Nothing listens on port 1: connections are refused, and the pool keeps retrying them, so
        // the sink's time limit is what ends the attempt.
        let table = uniqueTable()
        var down = try PostgresEndpoint(url: "postgres://postgres@127.0.0.1:1/gateway_test")
        down.queryTimeout = .seconds(1)
        down.connectTimeout = .milliseconds(500)
        let batch = (0..<5).map { record($0) }
        let unreachable = try sink(table: table, endpoint: down)
        for _ in 0..<2 {
            let outcome = await unreachable.deliver(batch)
            guard case .retry = outcome else {
                Issue.record("expected a retry, got \(outcome)")
                return
            }
        }
        await unreachable.close()
        let reachable = try sink(table: table)
        #expect(await reachable.deliver(batch) == .delivered)
        await reachable.close()
        #expect(try await rows(table).map(\.4).map(parsed) == batch.map { try parsed(String(buffer: $0.json)) })
        try await withDatabase { pool in try await pool.rows("DROP TABLE \(unescaped: table)") }
    }

    @Test func recordsJsonbRefusesGoToTheDeadLetterFileAndTheRestIsStored() async throws {
        let table = uniqueTable()
        let directory = temporaryDirectory("postgres")
        var records = (0..<6).map { record($0) }
        var invalidUTF8 = ByteBuffer(string: #"{"id":1,"bad":""#)
        invalidUTF8.writeBytes([0xC3, 0x28, 0xFF])
        invalidUTF8.writeString(#""}"#)
        records[1].json = invalidUTF8
        records[2].json = ByteBuffer(string: #"{"id":2,"nul":"a\u0000b"}"#)
        // Passes the sink's own checks; the server refuses it (an unpaired surrogate).
        records[4].json = ByteBuffer(string: #"{"id":4,"surrogate":"\ud800"}"#)
        records[5].json = ByteBuffer(string: #"{"id":5,"escaped":"\\u0000 is text here"}"#)
        try await withPipeline([.init(sink: try sink(table: table))], directory: directory) { pipeline in
            try await pipeline.append(records)
            #expect(await eventually {
                let lines = (try? Data(contentsOf: URL(fileURLWithPath: directory + "/deadletter/db.jsonl")))?.split(separator: UInt8(ascii: "\n"))
                return lines?.count == 3
            })
            #expect(await eventually { await count(table) == 3 })
        }
        let lines = try Data(contentsOf: URL(fileURLWithPath: directory + "/deadletter/db.jsonl")).split(separator: UInt8(ascii: "\n"))
        #expect(lines.count == 3)
        for (line, index) in zip(lines, [1, 2, 4]) {
            let tail = Data(",\"record\":".utf8) + Data(records[index].json.readableBytesView) + Data("}".utf8)
            #expect(line.starts(with: Data(#"{"sink":"db","reason":"PostgreSQL refused the record: "#.utf8)))
            #expect(Data(line.suffix(tail.count)) == tail)
        }
        #expect(try await rows(table).map(\.4).map(parsed) == [0, 3, 5].map { try parsed(String(buffer: records[$0].json)) })
        try await withDatabase { pool in try await pool.rows("DROP TABLE \(unescaped: table)") }
    }

    @Test func connectionsStartWithTheQueryTimeAsStatementTimeoutAndResetKeepsIt() async throws {
        func shown(_ endpoint: PostgresEndpoint) async throws -> [String] {
            let logger = self.logger
            let pool = PostgresPool(endpoint: endpoint, logger: logger)
            do {
                let values = try await pool.client.withConnection { connection -> [String] in
                    let show: PostgresQuery = "SHOW statement_timeout"
                    let before = try await connection.query(show, logger: logger).collect().first?.decode(String.self) ?? ""
                    _ = try await connection.query("SET statement_timeout = 60000", logger: logger).collect()
                    _ = try await connection.query("RESET statement_timeout", logger: logger).collect()
                    let after = try await connection.query(show, logger: logger).collect().first?.decode(String.self) ?? ""
                    return [before, after]
                }
                await pool.shutdown()
                return values
            } catch {
                await pool.shutdown()
                throw error
            }
        }
        var endpoint = try testEndpoint()
        endpoint.queryTimeout = .milliseconds(1500)
        #expect(try await shown(endpoint) == ["1500ms", "1500ms"])
        endpoint.statementTimeout = .seconds(3)
        #expect(try await shown(endpoint) == ["3s", "3s"])
        // Zero sends none: the server's own setting (0, no limit, on the test server) stays.
        endpoint.statementTimeout = .zero
        #expect(endpoint.effectiveStatementTimeout == nil)
        #expect(try await shown(endpoint) == ["0", "0"])
    }

    @Test func aStatementStuckOnALockFailsTheBatchWithinItsTime() async throws {
        let table = uniqueTable()
        var endpoint = try testEndpoint()
        endpoint.queryTimeout = .seconds(1)
        // The table made by a sink with time to spare: only the stuck batch is about the 1 s.
        let setup = try sink(table: table)
        try await setup.healthCheck()
        await setup.close()
        let db = try sink(table: table, endpoint: endpoint)
        var holding = try testEndpoint()
        holding.queryTimeout = .seconds(20)
        let holder = PostgresPool(endpoint: holding, logger: logger)
        // Another session holds the table for 8 s; the sink's INSERT waits on its lock.
        let (locked, lockTaken) = AsyncStream<Void>.makeStream()
        let lock = Task {
            defer { lockTaken.finish() }
            try await holder.transaction { connection, logger in
                _ = try await connection.query("LOCK TABLE \(unescaped: table) IN ACCESS EXCLUSIVE MODE", logger: logger).collect()
                lockTaken.yield()
                try await Task.sleep(for: .seconds(8))
            }
        }
        for await _ in locked { break }
        let start = ContinuousClock.now
        let outcome = await db.deliver([record(0)])
        let elapsed = ContinuousClock.now - start
        guard case .retry = outcome else {
            Issue.record("a batch stuck on a lock must be retried, got \(outcome)")
            return
        }
        // The server ends the statement at the batch's time: the worker is not held until the lock goes.
        #expect(elapsed < .seconds(6), "\(elapsed)")
        try await lock.value
        await holder.shutdown()
        // Once the lock is gone the batch goes in: a few tries, as the spool would, since the 1 s
        // limit that made the stuck batch fail also applies on a loaded machine.
        var delivered = false
        for _ in 0..<5 where !delivered { delivered = await db.deliver([record(0)]) == .delivered }
        #expect(delivered)
        await db.close()
        #expect(try await rows(table).map(\.4).map(parsed) == [try parsed(String(buffer: record(0).json))])
        try await withDatabase { pool in try await pool.rows("DROP TABLE \(unescaped: table)") }
    }

    @Test func theRowByRowPassGetsOnlyWhatIsLeftOfTheBatchTime() async throws {
        let table = uniqueTable()
        var endpoint = try testEndpoint()
        endpoint.queryTimeout = .seconds(3)
        let hasty = try sink(table: table, endpoint: endpoint)
        try await hasty.healthCheck()
        // Every row takes 0.6 s (a trigger), and one with a "bad" member is then refused as a data
        // error (SQLSTATE 22023), which sends the sink to its row-by-row pass.
        try await withDatabase { pool in
            // Counts the rows tried: a sequence is not rolled back with the statement.
            try await pool.rows(PostgresQuery(unsafeSQL: "CREATE SEQUENCE \(table)_tries"))
            try await pool.rows(PostgresQuery(unsafeSQL: """
                CREATE FUNCTION \(table)_slow() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                    PERFORM nextval('\(table)_tries');
                    PERFORM pg_sleep(0.6);
                    IF NEW.record->>'bad' IS NOT NULL THEN RAISE EXCEPTION 'bad record' USING ERRCODE = '22023'; END IF;
                    RETURN NEW;
                END $$
                """))
            try await pool.rows(PostgresQuery(unsafeSQL: "CREATE TRIGGER \(table)_slow BEFORE INSERT ON \(table) FOR EACH ROW EXECUTE FUNCTION \(table)_slow()"))
        }
        var batch = (0..<4).map { record($0) }
        batch[3].json = ByteBuffer(string: #"{"id":3,"bad":true}"#)
        // The batch insert takes 2.4 s of the 3 s and fails on the last row; what is left does not
        // fit one row, so the batch is retried by then (the row-by-row pass used to get 3 s more).
        let start = ContinuousClock.now
        let outcome = await hasty.deliver(batch)
        let elapsed = ContinuousClock.now - start
        await hasty.close()
        guard case .retry = outcome else {
            Issue.record("a row-by-row pass past the batch's time must end in a retry, got \(outcome)")
            return
        }
        // The batch's 4 rows, and at most the one row-by-row try the deadline cuts short (a
        // pass given its own time would try 3 more); the time taken, loosely (a loaded machine).
        let tries = try await withDatabase { pool in
            try await pool.rows(PostgresQuery(unsafeSQL: "SELECT last_value FROM \(table)_tries")).first?.decode(Int64.self)
        }
        #expect(try #require(tries) <= 5)
        #expect(elapsed < .seconds(8), "\(elapsed)")
        #expect(await count(table) == 0)
        // With time enough, the same batch stores its three good rows and refuses the bad one.
        endpoint.queryTimeout = .seconds(30)
        let patient = try sink(table: table, endpoint: endpoint)
        #expect(await patient.deliver(batch) == .partlyRejected(indices: [3], reason: "PostgreSQL refused the record: SQLSTATE 22023: bad record"))
        await patient.close()
        #expect(try await rows(table).map(\.4).map(parsed) == [0, 1, 2].map { try parsed(String(buffer: batch[$0].json)) })
        try await withDatabase { pool in
            try await pool.rows("DROP TABLE \(unescaped: table)")
            try await pool.rows(PostgresQuery(unsafeSQL: "DROP FUNCTION \(table)_slow()"))
            try await pool.rows(PostgresQuery(unsafeSQL: "DROP SEQUENCE \(table)_tries"))
        }
    }
}

/// The sink's checks that need no server.
@Suite struct PostgresSinkRulesTests {
    @Test(arguments: [
        ("osquery_logs", true), ("logs.osquery_2", true), ("_x", true),
        ("", false), ("2logs", false), ("Logs", false), ("a.b.c", false), ("a.", false), ("logs; DROP TABLE x", false),
        (String(repeating: "a", count: 64), false), (String(repeating: "a", count: 63), true),
    ])
    func tableNames(name: String, valid: Bool) {
        #expect(PostgresSink.Configuration.isValidTable(name) == valid)
    }

    @Test func jsonbChecks() {
        #expect(PostgresSink.jsonbCanHold(ByteBuffer(string: #"{"a":"☃ \\u0000 \u0041"}"#)))
        #expect(!PostgresSink.jsonbCanHold(ByteBuffer(string: #"{"a":"\u0000"}"#)))
        #expect(!PostgresSink.jsonbCanHold(ByteBuffer(bytes: Array(#"{"a":""#.utf8) + [0xFF] + Array(#""}"#.utf8))))
    }

    @Test func urls() throws {
        let endpoint = try PostgresEndpoint(url: "postgresql://gw%40x:p%3Ass@db.internal:6432/logs")
        #expect(endpoint.username == "gw@x")
        #expect(endpoint.password == "p:ss")
        #expect(endpoint.host == "db.internal")
        #expect(endpoint.port == 6432)
        #expect(endpoint.database == "logs")
        #expect(!endpoint.description.contains("p:ss"))
        #expect(throws: PostgresEndpoint.URLError.self) { try PostgresEndpoint(url: "http://db/x") }
        #expect(throws: PostgresEndpoint.URLError.self) { try PostgresEndpoint(url: "postgres://db/x") }
        #expect(throws: PostgresEndpoint.URLError.self) { try PostgresEndpoint(url: "postgres://u@db/x?sslmode=require") }
    }
}
