import Foundation
import NIOCore
public import PostgresNIO
import NIOSSL

/// One PostgreSQL database the gateway talks to: the node store (`node_store.postgres`) or a
/// `postgres` sink. Both make their client here, so they share the same rules: TLS as `tls` says,
/// trust pinned to `ca` when one is given (the system store otherwise), certificates always
/// verified, bounded connect and query times, and a bounded pool.
///
/// The configuration file reads it in one place (`PostgresEndpoint+YAML.swift` in the Gateway).
/// The description names the server and never the password.
public struct PostgresEndpoint: Sendable, Equatable, CustomStringConvertible {
    /// Whether the connection is encrypted (libpq's `sslmode` names, without its non-verifying modes:
    /// a certificate presented is always checked).
    public enum TLSMode: String, Sendable, CaseIterable {
        /// Plain TCP.
        case disable
        /// TLS when the server offers it, plain TCP otherwise.
        case prefer
        /// TLS or no connection.
        case require
    }

    /// Why a URL cannot be used.
    public struct URLError: Error, CustomStringConvertible, Sendable {
        public let description: String
    }

    public var host: String
    public var port: Int
    public var username: String
    /// nil: no password (trust or certificate authentication).
    public var password: String?
    /// nil: the user's own database.
    public var database: String?
    public var tls: TLSMode = .prefer
    /// PEM bundle the server's certificate must chain to; nil: the system's trust store.
    public var ca: String?
    public var connectTimeout: Duration = .seconds(5)
    /// One query (or transaction) from asking for a connection to the last row; past it the caller
    /// gets an error. The node store answers agents, so its limit stays below osquery's deadline.
    public var queryTimeout: Duration = .seconds(5)
    /// The server's own limit on one statement (`statement_timeout`, sent as a startup parameter
    /// of every connection): a statement stuck on a lock or a slow disk ends in an error the server
    /// sends back, so the connection and the caller are free when `queryTimeout` has passed. The
    /// client's time limit alone cannot do it: a query already sent cannot be called back, and its
    /// caller waits for the answer. nil (the default): `queryTimeout`; zero: nothing is sent and the
    /// server's own setting stays (for a pooler such as PgBouncer that refuses startup parameters it
    /// does not know).
    public var statementTimeout: Duration?
    /// Connections kept open at most.
    public var poolSize = 8

    /// The `statement_timeout` each connection starts with; nil when none is sent.
    public var effectiveStatementTimeout: Duration? {
        let limit = statementTimeout ?? queryTimeout
        return limit > .zero ? limit : nil
    }

    /// `duration` in whole milliseconds, at least 1: how `statement_timeout` is written (a number
    /// without a unit is milliseconds).
    public static func milliseconds(_ duration: Duration) -> Int64 {
        let parts = duration.components
        return max(1, parts.seconds * 1_000 + parts.attoseconds / 1_000_000_000_000_000)
    }

    public init(host: String, port: Int = 5432, username: String, password: String? = nil, database: String? = nil) {
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.database = database
    }

    /// Reads `postgres://user[:password]@host[:port]/database` (or `postgresql://`); the user and
    /// password may be percent-encoded.
    /// - Throws: `URLError` when the URL is not of that form; URL parameters (`?sslmode=...`) are
    ///   refused so there is one place for TLS settings (`tls` and `ca`).
    public init(url: String) throws {
        guard let components = URLComponents(string: url),
              let scheme = components.scheme?.lowercased(), scheme == "postgres" || scheme == "postgresql" else {
            throw URLError(description: "expected a URL such as postgres://user@host:5432/database")
        }
        guard var host = components.host, !host.isEmpty else {
            throw URLError(description: "the URL names no host")
        }
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard let user = components.user, !user.isEmpty else {
            throw URLError(description: "the URL names no user (postgres://USER@host/database)")
        }
        if components.query != nil {
            throw URLError(description: "URL parameters are not read; use the tls and ca keys")
        }
        let database = components.path.hasPrefix("/") ? String(components.path.dropFirst()) : components.path
        if database.contains("/") {
            throw URLError(description: "the URL path must be just the database name")
        }
        self.init(host: host, port: components.port ?? 5432, username: user, password: components.password,
                  database: database.isEmpty ? nil : database)
    }

    public var description: String {
        "postgres://\(username)@\(host):\(port)/\(database ?? username) (tls \(tls.rawValue))"
    }

    /// TLS 1.2 or later, the server's certificate verified against `ca` or the system's roots.
    private var tlsConfiguration: TLSConfiguration {
        var tlsConfiguration = TLSConfiguration.makeClientConfiguration()
        tlsConfiguration.minimumTLSVersion = .tlsv12
        if let ca { tlsConfiguration.trustRoots = .file(ca) }
        return tlsConfiguration
    }

    /// The configuration of one connection outside the pool, with the same TLS rules and connect
    /// time: for a session that must outlive any lease, such as the one holding `LISTEN`.
    /// - Throws: when the TLS context cannot be made (an unreadable `ca`).
    public func connectionConfiguration() throws -> PostgresConnection.Configuration {
        let mode: PostgresConnection.Configuration.TLS
        switch tls {
        case .disable: mode = .disable
        case .prefer: mode = .prefer(try NIOSSLContext(configuration: tlsConfiguration))
        case .require: mode = .require(try NIOSSLContext(configuration: tlsConfiguration))
        }
        var configuration = PostgresConnection.Configuration(
            host: host, port: port, username: username, password: password, database: database, tls: mode)
        configuration.options.connectTimeout = TimeAmount(connectTimeout)
        return configuration
    }

    /// The pool's configuration for postgres-nio.
    public func clientConfiguration() -> PostgresClient.Configuration {
        let tlsConfiguration = self.tlsConfiguration
        let mode: PostgresClient.Configuration.TLS
        switch tls {
        case .disable: mode = .disable
        case .prefer: mode = .prefer(tlsConfiguration)
        case .require: mode = .require(tlsConfiguration)
        }
        var configuration = PostgresClient.Configuration(
            host: host, port: port, username: username, password: password, database: database, tls: mode)
        configuration.options.connectTimeout = connectTimeout
        configuration.options.maximumConnections = poolSize
        if let limit = effectiveStatementTimeout {
            configuration.options.additionalStartupParameters.append(("statement_timeout", "\(Self.milliseconds(limit))"))
        }
        return configuration
    }
}
