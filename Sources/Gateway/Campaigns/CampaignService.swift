import Foundation
import Logging
import NIOCore
import ServiceLifecycle
import Sinks
import Support

/// Live queries (issue 11): starts campaigns, hands their SQL to the polling nodes, stores their
/// answers durably, and ends them when they expire or are cancelled.
///
/// The hot path is the distributed read: `work(for:)` asks the in-memory `CampaignIndex` and only a
/// node that has work costs a database write (its work marked sent). Answers are stored before the
/// agent is told `{}`; a resent answer is stored once.
final class CampaignService: Service, Sendable {
    /// The `campaigns` section.
    struct Configuration: Sendable, Equatable {
        /// The SQLite file (`campaigns.sqlite` in `data_dir` by default); unused with a PostgreSQL
        /// node store, whose database keeps the campaigns (`PostgresCampaignStore`).
        var path: String
        /// `accelerate` offered to a node that is given work: seconds of 5 s polling; 0 offers none.
        var accelerate = 60
        /// How long a campaign runs unless it says otherwise.
        var defaultLifetime: Duration = Campaign.defaultLifetime
        /// The longest lifetime a campaign may ask for.
        var maxLifetime: Duration = .seconds(86_400)
    }

    let configuration: Configuration
    let store: any CampaignStore
    let nodes: any NodeStore
    let index = CampaignIndex()
    private let tagsBySecret: [String: [String]]
    private let logger: Logger

    init(configuration: Configuration, store: any CampaignStore, nodes: any NodeStore, tagsBySecret: [String: [String]], logger: Logger) {
        self.configuration = configuration
        self.store = store
        self.nodes = nodes
        self.tagsBySecret = tagsBySecret
        self.logger = logger
    }

    /// Loads the active campaigns into the index (after a restart the stored states count: nodes
    /// already sent a query are not asked again, and their late answers are still taken).
    func restore(at now: Date = Date()) async throws {
        try await reload(at: now)
    }

    // MARK: - Gateways sharing a store

    /// Rebuilds the index from the store: the backstop of gateways sharing a PostgreSQL store
    /// (every `reload_every`, and when the invalidation channel reconnects), which picks up
    /// campaigns created or cancelled elsewhere whose notification was missed, and the states
    /// other gateways wrote. Campaigns dropped because they expired meanwhile are marked expired.
    /// - Throws: store errors; the index is then left as it was.
    func reload(at now: Date = Date()) async throws {
        var loaded: [(campaign: Campaign, nodes: [CampaignNode])] = []
        for campaign in try await store.campaigns(activeAt: now) {
            loaded.append((campaign, try await store.nodes(of: campaign.id)))
        }
        for dropped in index.replace(with: loaded) where dropped.cancelledAt == nil && now >= dropped.expiresAt {
            try? await store.expire(dropped.id)
        }
        await sweep(at: now)
    }

    /// Loads campaign `id` again after another gateway announced it (created or cancelled): an
    /// active one joins the index with its stored node states, an ended one leaves it.
    /// - Throws: store errors (the backstop reload catches up later).
    func refresh(_ id: String, at now: Date = Date()) async throws {
        guard let campaign = try await store.campaign(id: id), campaign.isActive(at: now) else {
            index.remove(id)
            return
        }
        guard index.campaign(id) == nil else { return }
        let nodes = try await store.nodes(of: id)
        index.add(campaign, nodes: nodes)
        logger.info("campaign announced by another gateway", metadata: ["gw.campaign": "\(id)", "gw.nodes": "\(nodes.count)"])
    }

    // MARK: - Operator side

    /// Why a campaign cannot start.
    struct Refusal: Error, CustomStringConvertible {
        var description: String
    }

    /// Starts a campaign asking every node `target` matches now.
    /// - Throws: `Refusal` for empty SQL, an empty target or one no node matches; store errors.
    func create(sql: String, name: String?, target: CampaignTarget, lifetime: Duration?, at now: Date = Date()) async throws -> (Campaign, [CampaignNode]) {
        let sql = sql.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !sql.isEmpty else { throw Refusal(description: "sql is empty") }
        guard !target.isEmpty else {
            throw Refusal(description: "no target: give all, node_ids, hosts, platforms, secrets, tags, osquery_version or certificates")
        }
        if let version = target.osqueryVersion, VersionRange(version) == nil {
            throw Refusal(description: "osquery_version must be a range such as >=5.10 or \">=5.0 <5.12\", found \"\(version)\"")
        }
        let lifetime = lifetime ?? configuration.defaultLifetime
        guard lifetime > .zero, lifetime <= configuration.maxLifetime else {
            throw Refusal(description: "expires_in must be above 0 and at most \(configuration.maxLifetime.components.seconds)s")
        }
        let tagsBySecret = self.tagsBySecret
        let targeted = try await nodes.allNodes().filter { node in
            target.matches(node, tags: node.secretName.flatMap { tagsBySecret[$0] } ?? [])
        }
        guard !targeted.isEmpty else { throw Refusal(description: "no enrolled node matches the target") }
        let campaign = Campaign(
            id: Campaign.newID(), name: name.flatMap { $0.isEmpty ? nil : $0 }, sql: sql, target: target, createdAt: now,
            expiresAt: now.addingTimeInterval(Double(lifetime.components.seconds) + Double(lifetime.components.attoseconds) / 1e18))
        let campaignNodes = targeted.map { CampaignNode(nodeID: $0.id, hostIdentifier: $0.hostIdentifier, state: .pending) }
        try await store.create(campaign, nodes: campaignNodes)
        index.add(campaign, nodes: campaignNodes)
        logger.notice("campaign started", metadata: ["gw.campaign": "\(campaign.id)", "gw.nodes": "\(campaignNodes.count)"])
        return (campaign, campaignNodes)
    }

    /// Cancels a campaign; nil when there is none with that id.
    func cancel(_ id: String, at now: Date = Date()) async throws -> Campaign? {
        guard var campaign = try await store.campaign(id: id) else { return nil }
        if campaign.cancelledAt == nil && now < campaign.expiresAt {
            try await store.cancel(id, at: now)
            campaign.cancelledAt = now
        }
        index.remove(id)
        return campaign
    }

    // MARK: - Agent side

    /// The campaigns whose SQL `node` should run now, marked sent. Empty (no database touched) when
    /// it has none; also empty when marking them sent failed, so the next poll offers them again.
    /// Work the store no longer has pending (another gateway sharing it sent it) is not sent again.
    func work(for node: NodeRecord, at now: Date = Date()) async -> [Campaign] {
        let work = index.takeWork(for: node.id, at: now)
        guard !work.isEmpty else { return [] }
        let marked: Set<String>
        do {
            marked = Set(try await store.markSent(work.map(\.id), node: node.id, at: now))
        } catch {
            logger.warning("campaign store unavailable; queries offered on the next poll", metadata: ["gw.error": "\(error)"])
            index.giveBack(work, to: node.id)
            return []
        }
        return work.filter { marked.contains($0.id) }
    }

    /// The distributed read answer for `work`: `{"accelerate":N,"queries":{"<id>":"<sql>"}}`.
    func readBody(_ work: [Campaign]) -> ByteBuffer {
        ByteBuffer(bytes: JSONValue.object(readMembers(work)).canonicalJSON())
    }

    /// `work` merged into an upstream backend's read answer: the backend's queries and members
    /// kept, the campaigns' queries added, `accelerate` the larger of both.
    func merged(_ work: [Campaign], into backend: ByteBuffer) -> ByteBuffer {
        guard case .object(var answer)? = try? JSONValue(parsing: backend.readableBytesView) else { return readBody(work) }
        var queries = answer["queries"]?.object ?? JSONObject()
        for campaign in work { queries[campaign.id] = .string(campaign.sql) }
        answer["queries"] = .object(queries)
        if configuration.accelerate > 0 {
            var existing = 0
            if case .number(let text)? = answer["accelerate"] { existing = Int(text) ?? 0 }
            answer["accelerate"] = .int(max(existing, configuration.accelerate))
        }
        return ByteBuffer(bytes: JSONValue.object(answer).canonicalJSON())
    }

    private func readMembers(_ work: [Campaign]) -> JSONObject {
        var queries = JSONObject()
        for campaign in work { queries[campaign.id] = .string(campaign.sql) }
        var answer = JSONObject()
        if configuration.accelerate > 0 { answer["accelerate"] = .int(configuration.accelerate) }
        answer["queries"] = .object(queries)
        return answer
    }

    /// Stores the answers in `write` that active campaigns await from `node`; returns the
    /// campaigns `write` answers (new or resent), by id, for naming the sinks' records.
    /// - Throws: when the store cannot take them (the agent then keeps its results and resends).
    func record(_ write: DistributedWriteRequest, from node: NodeRecord, receivedAt: Date) async throws -> [String: Campaign] {
        var answered: [String: Campaign] = [:]
        var answers: [CampaignAnswer] = []
        for result in write.results where result.id.hasPrefix(Campaign.idPrefix) {
            guard let campaign = index.campaign(result.id) else { continue }
            answered[campaign.id] = campaign
            guard index.awaiting(result.id, from: node.id, at: receivedAt) != nil else { continue }
            answers.append(CampaignAnswer(
                campaignID: result.id, nodeID: node.id, status: Self.status(result.status), message: Self.message(result.message),
                rows: result.rows.map { String(buffer: $0) } ?? "[]", receivedAt: receivedAt))
        }
        guard !answers.isEmpty else { return answered }
        _ = try await store.record(answers)
        for answer in answers { index.answered(answer.campaignID, by: node.id) }
        return answered
    }

    private static func status(_ value: ByteBuffer?) -> Int {
        guard let value else { return 0 }
        return Int(String(buffer: value)) ?? 1
    }

    private static func message(_ value: ByteBuffer?) -> String {
        guard let value, let parsed = try? JSONValue(parsing: value.readableBytesView) else { return "" }
        return parsed.string ?? ""
    }

    // MARK: - Ending campaigns

    /// Writes expired campaigns' outstanding nodes as expired and drops ended campaigns from the index.
    func sweep(at now: Date = Date()) async {
        for (campaign, expired) in index.finished(at: now) {
            if expired {
                do {
                    try await store.expire(campaign.id)
                } catch {
                    logger.warning("could not mark a campaign expired; retried", metadata: ["gw.campaign": "\(campaign.id)", "gw.error": "\(error)"])
                    continue
                }
            }
            index.remove(campaign.id)
        }
    }

    func run() async throws {
        while ServiceLoop.keepRunning {
            await ServiceLoop.pause(.seconds(1))
            await sweep()
        }
    }
}

extension CampaignService.Configuration {
    /// `campaigns`: `sqlite` (in `data_dir`), `accelerate`, `default_expiry`, `max_expiry`.
    init(reading section: MappingReader) {
        self.init(path: section.dataPath("sqlite") ?? section.reader.inDataDir("campaigns.sqlite"))
        if let accelerate = section.duration("accelerate") { self.accelerate = Int(accelerate.components.seconds) }
        if let lifetime = section.duration("default_expiry", minimum: .seconds(1)) { defaultLifetime = lifetime }
        if let longest = section.duration("max_expiry", minimum: .seconds(1)) { maxLifetime = longest }
        if defaultLifetime > maxLifetime { section.reader.report(section.key("default_expiry"), "must not be above max_expiry") }
    }
}
