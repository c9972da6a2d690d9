import Foundation
import Logging
import Metrics
import NIOConcurrencyHelpers
import PostgresNIO
import ServiceLifecycle
import Sinks
import Support

/// Keeps this gateway's caches current while others share its PostgreSQL store (issue 12 item 3).
///
/// Each gateway holds known node keys (`NodeAuthenticator`) and the active campaigns
/// (`CampaignIndex`) in memory, so an empty poll from a node with a warm cache touches no database.
/// What another gateway changes reaches them three ways:
///
/// 1. **Notifications.** One connection of its own (not a pool lease) holds `LISTEN` on
///    `ControlMessage.channel`; the stores `NOTIFY` inside the transactions of the rare control
///    events: a key revoked, a node enrolled again (its old key), a campaign created or cancelled.
///    A key heard of is forgotten (its next request reads the store); a campaign is loaded again.
/// 2. **A full reset whenever `LISTEN` starts** (at start and after every reconnection): every
///    cached key is forgotten and the campaigns are reloaded, because what was sent while nobody
///    listened is lost. The reset runs once `LISTEN` is active, so nothing falls in between.
/// 3. **A backstop every `reload_every`** (60 s): cached keys of nodes enrolled or revoked lately
///    are checked against the store, and the campaign index is rebuilt from it, in case a
///    notification was lost in a way the connection did not notice.
///
/// The listening connection is asked `SELECT 1` every `heartbeat`: a server that stopped answering
/// (hung, or a network path silently gone) is noticed, the connection dropped and opened again
/// with backoff. While the database is away nothing here clears a cache: cached nodes keep
/// working, and the reset comes when `LISTEN` works again.
///
/// Every event runs on one task, in order (`jobs`), so a reload and a notification after it
/// cannot overtake each other.
final class PostgresControlChannel: Service, Sendable {
    /// The invalidation settings in `node_store`.
    struct Configuration: Sendable, Equatable {
        /// `reload_every`: the backstop reload's period.
        var reloadInterval: Duration = .seconds(60)
        /// How often the listening connection must answer, and how long it may take.
        var heartbeat: Duration = .seconds(10)
        /// How far back the backstop looks beyond its previous run, for clocks of other gateways
        /// that run behind (enrollment and revocation times are the gateways' own).
        var clockSkew: Duration = .seconds(300)
    }

    private enum Job: Sendable {
        case message(ControlMessage)
        case reset
        case backstop
    }

    private struct State {
        var listening = false
        var resets = 0
        var lastBackstop = Date()
    }

    let configuration: Configuration
    let nodes: PostgresNodeStore
    let authenticator: NodeAuthenticator
    let campaigns: CampaignService
    private let logger: Logger
    private let state = NIOLockedValueBox(State())
    private let jobs: AsyncStream<Job>
    private let enqueue: AsyncStream<Job>.Continuation
    private let received = Counter(label: "gateway_control_notifications")
    private let resetCount = Counter(label: "gateway_control_resets")

    init(configuration: Configuration, nodes: PostgresNodeStore, authenticator: NodeAuthenticator, campaigns: CampaignService, logger: Logger) {
        self.configuration = configuration
        self.nodes = nodes
        self.authenticator = authenticator
        self.campaigns = campaigns
        self.logger = logger
        let (jobs, enqueue) = AsyncStream.makeStream(of: Job.self)
        self.jobs = jobs
        self.enqueue = enqueue
    }

    /// The listening connection's `application_name`.
    static let applicationName = "osquery-gateway control"

    /// Whether `LISTEN` is active now (tests wait for it before changing anything elsewhere).
    var isListening: Bool { state.withLockedValue { $0.listening } }

    /// How many full resets ran (one per start of `LISTEN`).
    var resets: Int { state.withLockedValue { $0.resets } }

    func run() async throws {
        state.withLockedValue { $0.lastBackstop = Date() }
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.perform() }
            group.addTask { await self.listen() }
            group.addTask { await self.backstop() }
            // The listener and the backstop end on shutdown; then the job queue is closed.
            _ = await group.next()
            _ = await group.next()
            enqueue.finish()
            _ = await group.next()
        }
    }

    // MARK: - Jobs

    /// Runs the jobs one after the other until the queue is closed.
    private func perform() async {
        for await job in jobs {
            switch job {
            case .message(.keyInvalidated(let hash)):
                authenticator.forget(keyHash: hash)
            case .message(.campaignChanged(let id)):
                do {
                    try await campaigns.refresh(id)
                } catch {
                    logger.warning("could not load an announced campaign; the backstop reload will", metadata: [
                        "gw.campaign": "\(id)", "gw.error": "\(PostgresFailure.describe(error))",
                    ])
                }
            case .reset:
                authenticator.forgetAll()
                do {
                    try await campaigns.reload()
                } catch {
                    logger.warning("could not reload the campaigns after listening again; the backstop reload will", metadata: [
                        "gw.error": "\(PostgresFailure.describe(error))",
                    ])
                }
                state.withLockedValue { $0.resets += 1 }
                resetCount.increment()
            case .backstop:
                await reloadBackstop()
            }
        }
    }

    /// Forgets cached keys the store shows changed since the previous backstop (with the skew
    /// margin), and rebuilds the campaign index. A failure changes nothing and is retried next time.
    private func reloadBackstop() async {
        let started = Date()
        let previous = state.withLockedValue { $0.lastBackstop }
        let skew = configuration.clockSkew.components
        let since = previous.addingTimeInterval(-(Double(skew.seconds) + Double(skew.attoseconds) / 1e18))
        do {
            let dropped = authenticator.forgetStale(try await nodes.changes(since: since))
            try await campaigns.reload()
            state.withLockedValue { $0.lastBackstop = started }
            if dropped > 0 {
                logger.notice("backstop reload forgot keys whose change was not announced", metadata: ["gw.keys": "\(dropped)"])
            }
        } catch {
            logger.warning("backstop reload failed; caches kept, retried", metadata: ["gw.error": "\(PostgresFailure.describe(error))"])
        }
    }

    private func backstop() async {
        while ServiceLoop.keepRunning {
            guard await ServiceLoop.pause(configuration.reloadInterval) else { return }
            enqueue.yield(.backstop)
        }
    }

    // MARK: - Listening

    private struct HeartbeatMissed: Error, CustomStringConvertible {
        var limit: Duration
        var description: String { "the listening connection did not answer within \(limit)" }
    }

    private struct ListenEnded: Error, CustomStringConvertible {
        var description: String { "the server ended the notifications" }
    }

    /// Holds `LISTEN` until shutdown, reconnecting with backoff whenever the connection fails.
    private func listen() async {
        let backoff = Backoff(base: .milliseconds(500), cap: .seconds(5))
        var attempt = 0
        var connectionID = 0
        while ServiceLoop.keepRunning {
            connectionID += 1
            do {
                try await listenOnce(id: connectionID) { attempt = 0 }
            } catch {
                if ServiceLoop.keepRunning {
                    logger.warning("invalidation channel lost; caches kept, reconnecting", metadata: [
                        "gw.store": "\(nodes.configuration.endpoint)", "gw.error": "\(PostgresFailure.describe(error))",
                    ])
                }
            }
            state.withLockedValue { $0.listening = false }
            guard ServiceLoop.keepRunning else { return }
            await ServiceLoop.pause(backoff.delay(attempt: attempt))
            attempt += 1
        }
    }

    /// One connection: `LISTEN`, the reset, then notifications and heartbeats until it fails or the
    /// gateway shuts down. `connected` runs once `LISTEN` is active.
    private func listenOnce(id: Int, connected: () -> Void) async throws {
        var settings = try nodes.configuration.endpoint.connectionConfiguration()
        // Named, so operators (and tests) tell it apart in pg_stat_activity.
        settings.options.additionalStartupParameters.append(("application_name", Self.applicationName))
        let connection = try await PostgresConnection.connect(configuration: settings, id: id, logger: nodes.pool.logger)
        do {
            try await connection.listen(on: ControlMessage.channel) { notifications in
                connected()
                state.withLockedValue { $0.listening = true }
                enqueue.yield(.reset)
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask {
                        for try await notification in notifications {
                            self.received.increment()
                            if let message = ControlMessage(payload: notification.payload) { self.enqueue.yield(.message(message)) }
                        }
                        if !Task.isCancelled { throw ListenEnded() }
                    }
                    group.addTask { try await self.heartbeats(on: connection) }
                    // The first to end decides: a lost connection throws, shutdown returns.
                    _ = try await group.next()
                    group.cancelAll()
                }
            }
        } catch {
            try? await connection.close()
            throw error
        }
        try? await connection.close()
    }

    /// Asks the connection `SELECT 1` every `heartbeat`; returns on shutdown.
    /// - Throws: when it fails or takes longer than `heartbeat` (the connection is closed then, so
    ///   a query stuck on a hung server cannot hold this task).
    private func heartbeats(on connection: PostgresConnection) async throws {
        let limit = configuration.heartbeat
        let logger = nodes.pool.logger
        while ServiceLoop.keepRunning {
            guard await ServiceLoop.pause(limit) else { return }
            let answered = try await withThrowingTaskGroup(of: Bool.self) { group in
                group.addTask {
                    _ = try await connection.query("SELECT 1", logger: logger).collect()
                    return true
                }
                group.addTask {
                    try await Task.sleep(for: limit)
                    return false
                }
                let first = try await group.next() ?? false
                if !first { try? await connection.close() }
                group.cancelAll()
                return first
            }
            if !answered { throw HeartbeatMissed(limit: limit) }
        }
    }
}
