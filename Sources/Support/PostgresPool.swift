public import Logging
public import PostgresNIO
import Synchronization

/// A running postgres-nio pool for one `PostgresEndpoint`, with the time limit and the error
/// vocabulary the node store and the `postgres` sink share.
///
/// `PostgresClient` only hands out connections while its `run()` is active. Its owners (a sink, the
/// node store) have no `run()` of their own in the service group, so the pool runs in a task it owns
/// from `init` to `shutdown()`; the owner calls `shutdown()` when it closes.
public final class PostgresPool: Sendable {
    public let endpoint: PostgresEndpoint
    public let client: PostgresClient
    /// For queries on a leased connection (postgres-nio logs its own background work at error only).
    public let logger: Logger
    private let runner: Task<Void, Never>
    private let sent = Atomic<Int>(0)

    /// How many queries (`rows`) and transactions this pool has run for requests: round trips to
    /// the database, counted so that tests and benchmarks can show what a warm cache saves. Batched
    /// background writes (`background: true`, the last-seen batches) are not counted: they happen
    /// every few seconds whatever the load.
    public var requestRoundTrips: Int { sent.load(ordering: .relaxed) }

    public init(endpoint: PostgresEndpoint, logger: Logger) {
        self.endpoint = endpoint
        var background = logger
        background.logLevel = max(logger.logLevel, .error)
        self.logger = background
        let client = PostgresClient(configuration: endpoint.clientConfiguration(), backgroundLogger: background)
        self.client = client
        runner = Task { await client.run() }
    }

    /// Closes every connection; queries after this fail.
    public func shutdown() async {
        runner.cancel()
        await runner.value
    }

    /// Runs `query` and reads every row (which also gives its connection back to the pool), within
    /// the endpoint's query time limit.
    /// - Parameters:
    ///   - limit: a shorter limit instead (what is left of a larger task's time).
    ///   - background: not counted in `requestRoundTrips`.
    @discardableResult
    public func rows(_ query: PostgresQuery, within limit: Duration? = nil, background: Bool = false) async throws -> [PostgresRow] {
        if !background { sent.wrappingAdd(1, ordering: .relaxed) }
        let client = client
        let logger = logger
        return try await withTimeLimit(limit) { try await client.query(query, logger: logger).collect() }
    }

    /// Runs `body` in a transaction on one connection (`BEGIN`, then `COMMIT`, or `ROLLBACK` when
    /// `body` throws), within the endpoint's query time limit. `body`'s own errors come out as they
    /// were thrown (postgres-nio's `withTransaction` would wrap them).
    /// - Parameter limit: a shorter limit instead (what is left of a larger task's time).
    public func transaction<T: Sendable>(within limit: Duration? = nil,
                                         _ body: @escaping @Sendable (PostgresConnection, Logger) async throws -> T) async throws -> T {
        sent.wrappingAdd(1, ordering: .relaxed)
        let client = client
        let logger = logger
        return try await withTimeLimit(limit) {
            try await client.withConnection { connection in
                _ = try await connection.query("BEGIN", logger: logger).collect()
                do {
                    let value = try await body(connection, logger)
                    _ = try await connection.query("COMMIT", logger: logger).collect()
                    return value
                } catch {
                    _ = try? await connection.query("ROLLBACK", logger: logger).collect()
                    throw error
                }
            }
        }
    }

    /// `operation`, or `PostgresTimeout` once the endpoint's query time passed. The wait for a
    /// connection (the whole wait while the database is down) is cancelled then; a query already
    /// sent cannot be, so a hung server may hold the caller until TCP gives up.
    /// - Parameter limit: instead of the endpoint's query time (schema migrations at start).
    public func withTimeLimit<T: Sendable>(_ limit: Duration? = nil, _ operation: @escaping @Sendable () async throws -> T) async throws -> T {
        let limit = limit ?? endpoint.queryTimeout
        return try await withThrowingTaskGroup(of: T.self) { group in
            group.addTask { try await operation() }
            group.addTask {
                try await Task.sleep(for: limit)
                throw PostgresTimeout(limit: limit)
            }
            defer { group.cancelAll() }
            guard let first = try await group.next() else { throw PostgresTimeout(limit: limit) }
            return first
        }
    }
}

/// A query did not finish within the endpoint's query time.
public struct PostgresTimeout: Error, CustomStringConvertible, Sendable {
    public let limit: Duration

    public init(limit: Duration) {
        self.limit = limit
    }

    public var description: String { "no answer from PostgreSQL within \(limit)" }
}

/// What a PostgreSQL error means to the gateway, without the query or its values.
public enum PostgresFailure {
    /// The server's SQLSTATE (`22P02`, `23505`, ...); nil when the server said nothing (connection
    /// lost, refused, timed out, pool closed).
    public static func sqlState(of error: any Error) -> String? {
        (error as? PSQLError)?.serverInfo?[.sqlState]
    }

    /// The statement could never succeed with these values: data exceptions (class 22: bad UTF-8,
    /// `\u0000` or a lone surrogate in jsonb, numbers out of range) and program limits (class 54: a
    /// value too large). Anything else (connection, permissions, a missing table, a full disk) is an
    /// outage that a retry outlives.
    public static func isDataError(_ error: any Error) -> Bool {
        guard let state = sqlState(of: error) else { return false }
        return state.hasPrefix("22") || state.hasPrefix("54")
    }

    /// A unique constraint refused the row (SQLSTATE 23505).
    public static func isUniqueViolation(_ error: any Error) -> Bool {
        sqlState(of: error) == "23505"
    }

    /// A short reason for logs and the dead-letter file: the SQLSTATE and the server's message, or
    /// postgres-nio's error code. `PSQLError`'s own description says nothing on purpose, and its
    /// debug description holds the query's values, which may be secrets or log content.
    public static func describe(_ error: any Error) -> String {
        guard let error = error as? PSQLError else { return "\(error)" }
        if let info = error.serverInfo {
            return "SQLSTATE \(info[.sqlState] ?? "?"): \(info[.message] ?? "no message")"
        }
        if let underlying = error.underlying { return "\(error.code): \(underlying)" }
        return "\(error.code)"
    }
}
