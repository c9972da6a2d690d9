public import Logging
import NIOConcurrencyHelpers
import NIOCore
import PostgresNIO
public import Support

/// Stores records as rows of a PostgreSQL table, what osctrl's `db` logger does, without losing a
/// line while the database is down (issue 13).
///
/// The table (`osquery_logs` by default) is created when missing:
/// `id` (identity: the order records were delivered in), `received_at timestamptz`,
/// `host_identifier`, `log_type`, `name` (query name or distributed query id; null for status),
/// `node` (the gateway's node id) and `record jsonb` (the agent's item). A batch is one multi-row
/// `INSERT` with bind parameters (1,000 rows a statement), all in one transaction, so a retried
/// batch never leaves half of itself behind.
///
/// Outcomes:
/// - connection errors, time-outs and every server error but a data error (permissions, a missing
///   table, a full disk, a read-only standby): retry, with the worker's backoff;
/// - a record jsonb cannot hold (invalid UTF-8, `\u0000`, a lone surrogate escape, a value too
///   large: SQLSTATE class 22 or 54): that record goes to the dead-letter file and the rest of the
///   batch is stored (`partlyRejected`). Records that fail the cheap checks here never reach the
///   server; when the server refuses a batch for its data, the batch is inserted again row by row
///   under savepoints to find the refused ones.
///
/// Time: a batch, the row-by-row pass included, gets the endpoint's query time (`timeout`) in all.
/// Every statement of a batch runs under `SET LOCAL statement_timeout` set to what is left of it, so
/// the server itself ends a statement stuck on a lock or a slow disk by then (the client cannot call
/// back a query it sent), and the batch is retried instead of holding the worker.
public final class PostgresSink: Sink {
    public struct Configuration: Sendable {
        public var name: String
        /// The database; its query time covers one whole batch.
        public var endpoint: PostgresEndpoint
        /// `table` or `schema.table` (see `isValidTable`).
        public var table = "osquery_logs"
        public var batching = Batching(maxRecords: 1_000, maxBytes: 4 << 20, maxWait: .seconds(1))

        public init(name: String, endpoint: PostgresEndpoint) {
            self.name = name
            self.endpoint = endpoint
        }

        /// A table name is written into SQL (bind parameters cannot name tables), so only plain
        /// identifiers are taken: lower-case letters, digits and `_`, not starting with a digit, at
        /// most 63 characters, optionally behind one `schema.`.
        public static func isValidTable(_ name: String) -> Bool {
            let parts = name.split(separator: ".", omittingEmptySubsequences: false)
            guard parts.count == 1 || parts.count == 2 else { return false }
            return parts.allSatisfy { part in
                guard let first = part.utf8.first, part.utf8.count <= 63, first < UInt8(ascii: "0") || first > UInt8(ascii: "9") else {
                    return false
                }
                return part.utf8.allSatisfy { byte in
                    (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
                        || byte == UInt8(ascii: "_")
                }
            }
        }
    }

    public let configuration: Configuration
    public var name: String { configuration.name }
    public var batching: Batching { configuration.batching }
    private let pool: PostgresPool
    /// The table was created (or found) on this run; forgotten when the server says it is missing.
    private let tableReady = NIOLockedValueBox(false)
    /// Rows per statement: 6 parameters each stays far below the protocol's 65,535.
    static let rowsPerStatement = 1_000

    /// - Throws: `SinkError` when the table name is not a plain identifier.
    public init(configuration: Configuration, logger: Logger) throws {
        guard Configuration.isValidTable(configuration.table) else {
            throw SinkError.io("sink \(configuration.name): table \(configuration.table) is not a plain identifier")
        }
        self.configuration = configuration
        pool = PostgresPool(endpoint: configuration.endpoint, logger: logger)
    }

    public func deliver(_ batch: [LogRecord]) async -> DeliveryOutcome {
        let deadline = ContinuousClock.now + configuration.endpoint.queryTimeout
        var refused: [Int] = []
        var reason: String?
        var rows: [Int] = []
        for (index, record) in batch.enumerated() {
            if Self.jsonbCanHold(record.json) {
                rows.append(index)
            } else {
                refused.append(index)
                reason = reason ?? "record is not valid UTF-8 or holds \\u0000, which jsonb refuses"
            }
        }
        do {
            try await ensureTable(before: deadline)
            if !rows.isEmpty {
                do {
                    try await insert(rows, of: batch, before: deadline)
                } catch let error where PostgresFailure.isDataError(error) {
                    let found = try await insertOneByOne(rows, of: batch, before: deadline)
                    refused += found.refused
                    reason = reason ?? found.reason
                }
            }
        } catch {
            if PostgresFailure.sqlState(of: error) == "42P01" { tableReady.withLockedValue { $0 = false } }
            return .retry(reason: PostgresFailure.describe(error), after: nil)
        }
        guard !refused.isEmpty else { return .delivered }
        let why = "PostgreSQL refused the record: " + (reason ?? "data error")
        if refused.count == batch.count { return .rejected(reason: why) }
        return .partlyRejected(indices: refused.sorted(), reason: why)
    }

    /// Reaches the server and creates the table if it is missing.
    public func healthCheck() async throws {
        try await pool.rows("SELECT 1")
        try await ensureTable(before: ContinuousClock.now + configuration.endpoint.queryTimeout)
    }

    public func close() async {
        await pool.shutdown()
    }

    // MARK: - Statements

    /// What is left of a batch's time.
    /// - Throws: `PostgresTimeout` when nothing is.
    private func remaining(before deadline: ContinuousClock.Instant) throws -> Duration {
        let left = deadline - ContinuousClock.now
        guard left >= .milliseconds(1) else { throw PostgresTimeout(limit: configuration.endpoint.queryTimeout) }
        return left
    }

    /// `SET LOCAL statement_timeout` to what is left before `deadline`, for the next statement of a
    /// transaction (SET takes no bind parameters; the value is a number made here).
    /// - Throws: `PostgresTimeout` when nothing is left.
    private static func statementTimeout(before deadline: ContinuousClock.Instant, batchTime: Duration) throws -> PostgresQuery {
        let left = deadline - ContinuousClock.now
        guard left >= .milliseconds(1) else { throw PostgresTimeout(limit: batchTime) }
        return PostgresQuery(unsafeSQL: "SET LOCAL statement_timeout = \(PostgresEndpoint.milliseconds(left))")
    }

    private func ensureTable(before deadline: ContinuousClock.Instant) async throws {
        guard !tableReady.withLockedValue({ $0 }) else { return }
        let left = try remaining(before: deadline)
        try await pool.rows(PostgresQuery(unsafeSQL: """
            CREATE TABLE IF NOT EXISTS \(configuration.table) (
                id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                received_at timestamptz NOT NULL,
                host_identifier text NOT NULL,
                log_type text NOT NULL,
                name text,
                node text NOT NULL,
                record jsonb NOT NULL
            )
            """), within: left)
        tableReady.withLockedValue { $0 = true }
    }

    /// All of `rows` in one transaction, `rowsPerStatement` a statement, by `deadline`.
    private func insert(_ rows: [Int], of batch: [LogRecord], before deadline: ContinuousClock.Instant) async throws {
        let statements = stride(from: 0, to: rows.count, by: Self.rowsPerStatement).map { start in
            Self.insert(rows[start..<min(start + Self.rowsPerStatement, rows.count)], of: batch, into: configuration.table)
        }
        let batchTime = configuration.endpoint.queryTimeout
        try await pool.transaction(within: try remaining(before: deadline)) { connection, logger in
            for statement in statements {
                try Task.checkCancellation()
                _ = try await connection.query(try PostgresSink.statementTimeout(before: deadline, batchTime: batchTime), logger: logger).collect()
                _ = try await connection.query(statement, logger: logger).collect()
            }
        }
    }

    /// Each of `rows` under its own savepoint, in one transaction, by `deadline` (what the first
    /// attempt left of the batch's time): the ones the server refuses for their data are rolled back
    /// and returned, the others are stored.
    private func insertOneByOne(_ rows: [Int], of batch: [LogRecord],
                                before deadline: ContinuousClock.Instant) async throws -> (refused: [Int], reason: String?) {
        let statements = rows.map { (index: $0, query: Self.insert([$0], of: batch, into: configuration.table)) }
        let batchTime = configuration.endpoint.queryTimeout
        return try await pool.transaction(within: try remaining(before: deadline)) { connection, logger in
            var refused: [Int] = []
            var reason: String?
            for statement in statements {
                try Task.checkCancellation()
                // Each row gets only what is left, so the rows together end by the deadline.
                _ = try await connection.query(try PostgresSink.statementTimeout(before: deadline, batchTime: batchTime), logger: logger).collect()
                _ = try await connection.query("SAVEPOINT gateway_row", logger: logger).collect()
                do {
                    _ = try await connection.query(statement.query, logger: logger).collect()
                    _ = try await connection.query("RELEASE SAVEPOINT gateway_row", logger: logger).collect()
                } catch let error where PostgresFailure.isDataError(error) {
                    _ = try await connection.query("ROLLBACK TO SAVEPOINT gateway_row", logger: logger).collect()
                    refused.append(statement.index)
                    reason = reason ?? PostgresFailure.describe(error)
                }
            }
            return (refused: refused, reason: reason)
        }
    }

    /// `INSERT INTO table (...) VALUES ($1, ..., $6), ($7, ...)` for the records at `rows`.
    static func insert(_ rows: some Collection<Int>, of batch: [LogRecord], into table: String) -> PostgresQuery {
        var bindings = PostgresBindings(capacity: rows.count * 6)
        var sql = "INSERT INTO \(table) (received_at, host_identifier, log_type, name, node, record) VALUES "
        for (position, index) in rows.enumerated() {
            let record = batch[index]
            bindings.append(record.receivedAt)
            bindings.append(record.hostIdentifier)
            bindings.append(record.kind.rawValue)
            bindings.append(record.queryName)
            bindings.append(record.nodeID)
            bindings.append(JSONBText(json: record.json))
            let base = position * 6
            if position > 0 { sql += ", " }
            sql += "($\(base + 1), $\(base + 2), $\(base + 3), $\(base + 4), $\(base + 5), $\(base + 6))"
        }
        return PostgresQuery(unsafeSQL: sql, binds: bindings)
    }

    /// False for JSON that jsonb is sure to refuse: invalid UTF-8 (the spool keeps what agents sent)
    /// or a `\u0000` escape (jsonb text cannot hold NUL).
    static func jsonbCanHold(_ json: ByteBuffer) -> Bool {
        json.withUnsafeReadableBytes { bytes in
            var decoder = UTF8()
            var iterator = bytes.makeIterator()
            decoding: while true {
                switch decoder.decode(&iterator) {
                case .scalarValue: continue
                case .emptyInput: break decoding
                case .error: return false
                }
            }
            var i = 0
            while i < bytes.count {
                guard bytes[i] == UInt8(ascii: "\\") else {
                    i += 1
                    continue
                }
                if i + 5 < bytes.count, bytes[i + 1] == UInt8(ascii: "u"),
                   bytes[(i + 2)..<(i + 6)].allSatisfy({ $0 == UInt8(ascii: "0") }) {
                    return false
                }
                i += 2  // the escaped character, so `\\u0000` (a backslash, then text) is fine
            }
            return true
        }
    }
}

/// A record's JSON sent as jsonb as it is, without parsing it here: jsonb's binary input is a
/// version byte (1) and the JSON text, which the server checks and parses.
struct JSONBText: PostgresNonThrowingEncodable {
    var json: ByteBuffer

    static var psqlType: PostgresDataType { .jsonb }
    static var psqlFormat: PostgresFormat { .binary }

    func encode<JSONEncoder: PostgresJSONEncoder>(into byteBuffer: inout ByteBuffer, context: PostgresEncodingContext<JSONEncoder>) {
        byteBuffer.writeInteger(UInt8(1))
        byteBuffer.writeImmutableBuffer(json)
    }
}
