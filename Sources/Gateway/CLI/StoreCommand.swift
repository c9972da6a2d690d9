import ArgumentParser
import Foundation
import Logging
import Support

/// `osquery-gateway store ...`: the node store itself.
struct StoreCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "store",
        abstract: "Work on the node store.",
        subcommands: [StoreCopyCommand.self])
}

/// `osquery-gateway store copy --from CONFIG_OR_SQLITE --to postgres://...`: moves a fleet from the
/// embedded SQLite store to PostgreSQL without re-enrolling an agent (issue 12 item 5,
/// docs/scale-out.md#moving-an-existing-install).
struct StoreCopyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "copy",
        abstract: "Copy every node, campaign and carve from an SQLite install into PostgreSQL, so agents keep their node keys.",
        discussion: """
            --from is the SQLite file (data/nodes.sqlite) or a gateway configuration whose node_store is \
            SQLite. --to is a postgres:// URL (the password from the URL, else PGPASSWORD) or a gateway \
            configuration whose node_store is postgres (its password_file, tls and ca apply). The schema is \
            created or migrated first, as a gateway would.

            Every node is copied whole: id, key hash, facts, enroll secret name, certificate binding, \
            enrollment, last seen, sealed upstream key and revocation. Rerunning is safe: nodes already \
            there are left alone (the later last_seen is kept), so copy while the old gateway runs, stop it, \
            and copy again. A node PostgreSQL holds differently is refused and named, and the command exits \
            1, unless --force: then the SQLite row replaces it.

            The campaigns (with their answers) and the carves beside the node store are copied too: a \
            configuration's campaigns.sqlite, carves.sqlite and carves.directory, or those defaults beside an \
            SQLite file. A complete carve's file becomes its blocks in PostgreSQL, where every gateway can \
            serve it; when a node was sent a campaign's query is not kept.
            """)

    @Option(help: "The SQLite node store, or a configuration that uses one.", completion: .file())
    var from: String
    @Option(help: "A postgres:// URL, or a configuration whose node_store is postgres.")
    var to: String
    @Flag(help: "Replace nodes that PostgreSQL holds differently with the SQLite rows.")
    var force = false

    func run() async throws {
        var logger = Logger(label: "osquery-gateway")
        logger.logLevel = .critical
        await CommandFailure.exitOnFailure {
            let sourcePath = try Self.sqlitePath(from)
            let companions = try Self.companions(of: from, nodeStore: sourcePath)
            let endpoint = try Self.postgresEndpoint(to)
            let source = try SQLiteNodeStore(path: sourcePath)
            let total = try await source.count()
            print("copying \(total) nodes from \(sourcePath) to \(endpoint)")
            fflush(nil)
            let destination: PostgresNodeStore
            do {
                destination = try await PostgresNodeStore.open(.init(endpoint: endpoint), logger: logger)
            } catch {
                throw CommandFailure.failed("osquery-gateway: \(error)")
            }
            let counts: NodeStoreCopy.Counts
            let stored: Int
            var others: [String] = []
            do {
                var reported = ContinuousClock.now
                counts = try await NodeStoreCopy(force: force).run(from: source, to: destination) { sofar in
                    // Long copies say how far they are, every few seconds, on standard error.
                    guard ContinuousClock.now - reported >= .seconds(2) else { return }
                    reported = ContinuousClock.now
                    FileHandle.standardError.write(Data("  \(sofar.read) of \(total) nodes\n".utf8))
                }
                stored = try await destination.count()
                // The campaigns and carves beside the node store, into the same database.
                if let path = companions.campaigns {
                    let copied = try await CampaignStoreCopy().run(
                        from: try SQLiteCampaignStore(path: path), to: PostgresCampaignStore(pool: destination.pool))
                    others.append(copied.summary)
                } else {
                    others.append("campaigns: none found beside the node store")
                }
                if let path = companions.carves {
                    let copied = try await CarveStoreCopy(directory: companions.carveFiles).run(
                        from: try SQLiteCarveStore(path: path), to: PostgresCarveStore(pool: destination.pool))
                    others.append(copied.summary)
                } else {
                    others.append("carves: none found beside the node store")
                }
            } catch {
                await destination.shutdown()
                throw CommandFailure.failed(
                    "osquery-gateway: the copy stopped: \(PostgresFailure.describe(error)). What was copied stays; run the command again to finish.")
            }
            await destination.shutdown()
            print(counts.summary)
            print("PostgreSQL now holds \(stored) nodes")
            for line in others { print(line) }
            guard counts.refused.isEmpty else {
                let shown = counts.refused.prefix(20).map { "  \($0.id) (\($0.hostIdentifier)): \($0.reason.rawValue)" }
                let more = counts.refused.count > shown.count ? ["  ... and \(counts.refused.count - shown.count) more"] : []
                throw CommandFailure.failed((
                    ["\(counts.refused.count) nodes were left as PostgreSQL holds them; rerun with --force to replace them with the SQLite rows:"]
                        + shown + more).joined(separator: "\n"))
            }
        }
    }

    /// The SQLite file `--from` names: the file itself, or a configuration's `node_store.sqlite`.
    static func sqlitePath(_ argument: String) throws -> String {
        guard FileManager.default.fileExists(atPath: argument) else {
            throw CommandFailure.usage("--from: no such file: \(argument)")
        }
        if isSQLiteFile(argument) { return argument }
        let configuration = try GatewayConfiguration.load(file: argument)
        guard case .sqlite(let sqlite) = configuration.nodeStore else {
            throw CommandFailure.usage("--from: \(argument) keeps its nodes in PostgreSQL; give an SQLite file or a configuration that uses one")
        }
        guard FileManager.default.fileExists(atPath: sqlite.path) else {
            throw CommandFailure.configuration("--from: the node store of \(argument), \(sqlite.path), does not exist")
        }
        return sqlite.path
    }

    /// The campaign and carve stores that go with the node store `--from` names: a configuration's
    /// `campaigns.sqlite`, `carves.sqlite` and `carves.directory`, or beside an SQLite file named
    /// directly the defaults of its `data_dir` (`campaigns.sqlite`, `carves.sqlite`, `carves/`).
    /// A store that does not exist is nil (nothing to copy).
    static func companions(of argument: String, nodeStore: String) throws -> (campaigns: String?, carves: String?, carveFiles: String) {
        var campaigns: String, carves: String, carveFiles: String
        if isSQLiteFile(argument) {
            let folder = (nodeStore as NSString).deletingLastPathComponent
            let base = folder.isEmpty ? "." : folder
            (campaigns, carves, carveFiles) = (base + "/campaigns.sqlite", base + "/carves.sqlite", base + "/carves")
        } else {
            let configuration = try GatewayConfiguration.load(file: argument)
            (campaigns, carves, carveFiles) = (configuration.campaigns.path, configuration.carves.path, configuration.carves.directory)
        }
        let exists = { (path: String) in FileManager.default.fileExists(atPath: path) ? path : nil }
        return (exists(campaigns), exists(carves), carveFiles)
    }

    /// The database `--to` names: a URL, or a configuration's `node_store.postgres`.
    static func postgresEndpoint(_ argument: String) throws -> PostgresEndpoint {
        var endpoint: PostgresEndpoint
        let lowered = argument.lowercased()
        if lowered.hasPrefix("postgres://") || lowered.hasPrefix("postgresql://") {
            do {
                endpoint = try PostgresEndpoint(url: argument)
            } catch {
                throw CommandFailure.usage("--to: \(error)")
            }
            if endpoint.password == nil, let password = ProcessInfo.processInfo.environment["PGPASSWORD"], !password.isEmpty {
                endpoint.password = password
            }
        } else {
            guard FileManager.default.fileExists(atPath: argument) else {
                throw CommandFailure.usage("--to: expected a postgres:// URL or a configuration file, found \(argument)")
            }
            guard case .postgres(let postgres) = try GatewayConfiguration.load(file: argument).nodeStore else {
                throw CommandFailure.usage("--to: \(argument) keeps its nodes in SQLite; give a postgres:// URL or a configuration whose node_store is postgres")
            }
            endpoint = postgres.endpoint
        }
        // A page of 500 nodes over a slow link may take longer than an agent's request may.
        endpoint.queryTimeout = max(endpoint.queryTimeout, .seconds(60))
        return endpoint
    }

    /// Whether `path` starts with SQLite's header ("SQLite format 3\0").
    static func isSQLiteFile(_ path: String) -> Bool {
        guard let handle = FileHandle(forReadingAtPath: path) else { return false }
        defer { try? handle.close() }
        return (try? handle.read(upToCount: 16)) == Data("SQLite format 3\u{0}".utf8)
    }
}
