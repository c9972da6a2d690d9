import CompressNIO
import Foundation
import Logging
import Metrics
import NIOConcurrencyHelpers
import NIOCore
import ServiceLifecycle
import Sinks

/// Keeps every node's osquery config ready to serve: sources refreshed in the background, merged per
/// target, rendered once, handed out from memory.
///
/// - Each source is fetched every `refreshInterval`; a failed fetch keeps its last good content and
///   records the error and age (logs, `config render`).
/// - A target's config is rebuilt only when the content of one of its sources changed. The result is
///   canonical JSON (sorted keys), so the same inputs always give the same bytes and agents do not
///   reconfigure on every refresh (docs/protocol.md#config). A gzip copy is made at the same time.
/// - A merge that fails (the `error` collision policy) or a result over `maxSize` bytes or nested
///   `maxDepth` deep keeps the target's last good config and reports the problem.
/// - A target is served only once every one of its sources has loaded at least once; until then the
///   endpoint answers 503 with an error body, so agents keep the config they have instead of
///   applying a partial one.
final class AgentConfigService: Service, Sendable {
    struct Options: Sendable {
        var policy: ConfigMerger.CollisionPolicy = .rename
        /// osquery up to 5.23.1 refuses configs over 1 MiB (docs/protocol.md#config).
        var maxSize = 1 << 20
        /// osquery refuses configs nested 32 levels or deeper.
        var maxDepth = 32
    }

    /// One rendered config, as served.
    struct Rendered: Sendable {
        var json: ByteBuffer
        var gzipped: ByteBuffer
        var origins: [String: String]
        var warnings: [String]
    }

    struct SourceStatus: Sendable {
        var content: JSONObject?
        var canonical: [UInt8] = []
        var loadedAt: Date?
        var error: String?
        var nextRefresh = ContinuousClock.now
    }

    /// A node as targeting sees it: a re-enrollment (new host details) or another certificate is a new key.
    private struct TargetKey: Hashable {
        var nodeID: String
        var enrolledAt: Date
        var certificate: String?
    }

    /// What the configuration file says: replaced as a whole on SIGHUP (`adopt`).
    private struct Setup {
        var sources: [any ConfigSource]
        var targets: [AgentConfigTarget]
        var options: Options
        var tagsBySecret: [String: [String]]
    }

    private struct State {
        var setup: Setup
        /// Bumped by `adopt`, so a refresh that began under the old setup does not write into the new.
        var generation = 0
        var sources: [String: SourceStatus] = [:]
        var rendered: [Rendered?]
        var problems: [String?]
        var targetOfNode: [TargetKey: Int] = [:]
    }

    var sources: [any ConfigSource] { state.withLockedValue { $0.setup.sources } }
    var targets: [AgentConfigTarget] { state.withLockedValue { $0.setup.targets } }
    var options: Options { state.withLockedValue { $0.setup.options } }
    private let logger: Logger
    private let state: NIOLockedValueBox<State>

    /// - Parameters:
    ///   - targets: checked in order; the last one should match every node (the default).
    ///   - tagsBySecret: node tags per enroll secret name, for target matching.
    init(sources: [any ConfigSource], targets: [AgentConfigTarget], options: Options = .init(), tagsBySecret: [String: [String]] = [:], logger: Logger) {
        self.logger = logger
        state = NIOLockedValueBox(State(
            setup: Setup(sources: sources, targets: targets, options: options, tagsBySecret: tagsBySecret),
            rendered: Array(repeating: nil, count: targets.count), problems: Array(repeating: nil, count: targets.count)))
    }

    /// Takes over `other`'s sources, targets and rendered configs at once (SIGHUP): `other` was built
    /// from the new configuration file and refreshed, so nodes go from one complete config to the
    /// next and never see a gap.
    func adopt(_ other: AgentConfigService) {
        var next = other.state.withLockedValue { $0 }
        state.withLockedValue { state in
            next.generation = state.generation + 1
            state = next
        }
    }

    // MARK: - Serving

    /// The config for `node`, or nil while none can be served.
    func config(for node: NodeRecord, certificate: PeerCertificate?) -> Rendered? {
        state.withLockedValue { state in
            let index = Self.targetIndex(of: node, certificate, &state)
            return index < state.rendered.count ? state.rendered[index] : nil
        }
    }

    /// The target of `node`, cached per enrollment and certificate.
    private static func targetIndex(of node: NodeRecord, _ certificate: PeerCertificate?, _ state: inout State) -> Int {
        let cacheKey = TargetKey(nodeID: node.id, enrolledAt: node.enrolledAt, certificate: certificate?.fingerprint)
        if let cached = state.targetOfNode[cacheKey] { return cached }
        let index = targetIndex(for: facts(node, certificate, state.setup), in: state.setup.targets)
        if state.targetOfNode.count > 500_000 { state.targetOfNode.removeAll(keepingCapacity: true) }
        state.targetOfNode[cacheKey] = index
        return index
    }

    // MARK: - Per-node sources

    /// A node's target when it uses a per-node source (`PerNodeConfigSource`): what the config
    /// endpoint needs to merge that node's content in, in the target's source order, by the same
    /// rules and limits as every other config.
    struct PerNodeTarget: Sendable {
        /// The per-node source's name (provenance, renamed queries).
        var source: String
        /// The target's contributions with `{}` at `slot`; nil while another of its sources has never loaded.
        var contributions: [ConfigMerger.Contribution]?
        var slot: Int
        /// The target's config from its other sources alone; nil when it has no other source (or none
        /// could be rendered yet), because `{}` served to an agent would wipe its schedule.
        var local: Rendered?
    }

    /// The per-node view of `node`'s target; nil when that target has no per-node source.
    func perNodeTarget(for node: NodeRecord, certificate: PeerCertificate?) -> PerNodeTarget? {
        state.withLockedValue { state in
            let index = Self.targetIndex(of: node, certificate, &state)
            guard index < state.setup.targets.count else { return nil }
            let target = state.setup.targets[index]
            let perNode = Set(state.setup.sources.filter { $0 is PerNodeConfigSource }.map { $0.name })
            guard let slot = target.sources.firstIndex(where: perNode.contains) else { return nil }
            var contributions: [ConfigMerger.Contribution]? = []
            for name in target.sources {
                guard let content = state.sources[name]?.content else {
                    contributions = nil
                    break
                }
                contributions?.append(.init(source: name, config: content))
            }
            let hasOthers = target.sources.contains { !perNode.contains($0) }
            return PerNodeTarget(
                source: target.sources[slot], contributions: contributions, slot: slot,
                local: hasOthers && index < state.rendered.count ? state.rendered[index] : nil)
        }
    }

    /// `target`'s config with `content` (one node's, from the per-node source) in its place.
    /// - Returns: the rendered config, or the reason it cannot be served (sources not loaded, a
    ///   refused merge, over `maxSize` or too deep).
    func render(_ content: JSONObject, into target: PerNodeTarget) -> Result<Rendered, AgentConfigError> {
        guard var contributions = target.contributions, target.slot < contributions.count else {
            return .failure(AgentConfigError("a config source of this target has not loaded yet"))
        }
        contributions[target.slot].config = content
        return render(contributions, options: options)
    }

    func facts(_ node: NodeRecord, _ certificate: PeerCertificate?) -> NodeFacts {
        Self.facts(node, certificate, state.withLockedValue { $0.setup })
    }

    private static func facts(_ node: NodeRecord, _ certificate: PeerCertificate?, _ setup: Setup) -> NodeFacts {
        NodeFacts(
            hostIdentifier: node.hostIdentifier, platformType: node.platformType, hostDetails: node.hostDetails,
            secretName: node.secretName, tags: node.secretName.flatMap { setup.tagsBySecret[$0] } ?? [], certificate: certificate)
    }

    /// The first target matching `facts`; `targets.count` when none does.
    func targetIndex(for facts: NodeFacts) -> Int {
        Self.targetIndex(for: facts, in: targets)
    }

    private static func targetIndex(for facts: NodeFacts, in targets: [AgentConfigTarget]) -> Int {
        targets.firstIndex { $0.matches(facts) } ?? targets.count
    }

    /// The rendered config, its problem and the source states, for `config render`.
    func snapshot(target index: Int) -> (rendered: Rendered?, problem: String?, sources: [String: SourceStatus]) {
        state.withLockedValue { state in
            guard index < state.rendered.count else { return (nil, "no target matches this node", state.sources) }
            return (state.rendered[index], state.problems[index], state.sources)
        }
    }

    // MARK: - Refreshing

    /// Fetches sources (only those due, unless `force`), then rebuilds the targets whose sources changed.
    func refresh(force: Bool = false) async {
        let now = ContinuousClock.now
        let (setup, generation) = state.withLockedValue { ($0.setup, $0.generation) }
        let due = setup.sources.filter { source in
            force || state.withLockedValue { ($0.sources[source.name]?.nextRefresh ?? now) <= now }
        }
        guard !due.isEmpty else { return }
        let results = await withTaskGroup(of: (String, Result<JSONObject, any Error>).self) { group in
            for source in due {
                group.addTask {
                    do { return (source.name, .success(try await source.load())) } catch { return (source.name, .failure(error)) }
                }
            }
            var results: [(String, Result<JSONObject, any Error>)] = []
            for await result in group { results.append(result) }
            return results
        }
        var changed = Set<String>()
        let current = state.withLockedValue { state -> Bool in
            guard state.generation == generation else { return false }
            for (name, result) in results {
                var status = state.sources[name] ?? SourceStatus()
                let interval = setup.sources.first { $0.name == name }?.refreshInterval ?? .seconds(10)
                status.nextRefresh = ContinuousClock.now + interval
                switch result {
                case .success(let content):
                    let canonical = JSONValue.object(content).canonicalJSON()
                    if canonical != status.canonical { changed.insert(name) }
                    status.content = content
                    status.canonical = canonical
                    status.loadedAt = Date()
                    status.error = nil
                case .failure(let error):
                    if status.error != "\(error)" {
                        logger.error("config source failed; serving its last good content", metadata: [
                            "gw.source": "\(name)", "gw.error": "\(error)",
                            "gw.age_seconds": "\(status.loadedAt.map { Int(Date().timeIntervalSince($0)) }.map(String.init) ?? "never loaded")",
                        ])
                    }
                    status.error = "\(error)"
                }
                state.sources[name] = status
            }
            return true
        }
        if current && !changed.isEmpty { rebuild(changed: changed, setup: setup, generation: generation) }
    }

    /// Re-merges every target that uses a changed source.
    private func rebuild(changed: Set<String>, setup: Setup, generation: Int) {
        for (index, target) in setup.targets.enumerated() where !target.sources.isEmpty && !changed.isDisjoint(with: target.sources) {
            let contributions: [ConfigMerger.Contribution]? = state.withLockedValue { state in
                var list: [ConfigMerger.Contribution] = []
                for name in target.sources {
                    guard let content = state.sources[name]?.content else { return nil }
                    list.append(.init(source: name, config: content))
                }
                return list
            }
            guard let contributions else { continue }  // a source has never loaded: serve nothing yet
            let outcome = render(contributions, options: setup.options)
            state.withLockedValue { state in
                guard state.generation == generation else { return }
                switch outcome {
                case .success(let rendered):
                    state.rendered[index] = rendered
                    state.problems[index] = nil
                case .failure(let problem):
                    state.problems[index] = problem.description
                }
            }
            switch outcome {
            case .success(let rendered):
                logger.info("osquery config rebuilt", metadata: [
                    "gw.target": "\(target.name)", "gw.bytes": "\(rendered.json.readableBytes)", "gw.warnings": "\(rendered.warnings.count)",
                ])
                for warning in rendered.warnings { logger.notice("config merge: \(warning)", metadata: ["gw.target": "\(target.name)"]) }
            case .failure(let problem):
                logger.error("osquery config not rebuilt; serving the last good one", metadata: ["gw.target": "\(target.name)", "gw.error": "\(problem)"])
            }
        }
    }

    private func render(_ contributions: [ConfigMerger.Contribution], options: Options) -> Result<Rendered, AgentConfigError> {
        let merged: ConfigMerger.Result
        do {
            merged = try ConfigMerger(policy: options.policy).merge(contributions)
        } catch {
            return .failure(AgentConfigError("merge refused: \(error)"))
        }
        let value = JSONValue.object(merged.config)
        let depth = value.depth
        guard depth < options.maxDepth else {
            return .failure(AgentConfigError("merged config is nested \(depth) levels deep; osquery accepts fewer than \(options.maxDepth)"))
        }
        let json = ByteBuffer(bytes: value.canonicalJSON())
        guard json.readableBytes <= options.maxSize else {
            return .failure(AgentConfigError("merged config is \(json.readableBytes) bytes; the limit is \(options.maxSize)"))
        }
        var source = json
        let gzipped = (try? source.compress(with: .gzip())) ?? json
        return .success(Rendered(json: json, gzipped: gzipped, origins: merged.origins, warnings: merged.warnings))
    }

    /// Publishes each source's age and state (`config_source_age_seconds`, `config_source_up`).
    func recordMetrics() {
        let (statuses, sources) = state.withLockedValue { ($0.sources, $0.setup.sources) }
        for source in sources {
            let status = statuses[source.name]
            let dimensions = [("source", source.name)]
            Gauge(label: "config_source_up", dimensions: dimensions).record(status?.error == nil && status?.loadedAt != nil ? 1 : 0)
            if let loaded = status?.loadedAt {
                Gauge(label: "config_source_age_seconds", dimensions: dimensions).record(Date().timeIntervalSince(loaded))
            }
        }
    }

    /// Refreshes due sources every second until shutdown.
    func run() async throws {
        while ServiceLoop.keepRunning {
            await refresh()
            recordMetrics()
            await ServiceLoop.pause(.seconds(1))
        }
    }
}

extension JSONValue {
    /// Nesting depth: a scalar is 0, `{}` and `[]` are 1.
    var depth: Int {
        switch self {
        case .array(let elements): return 1 + (elements.map(\.depth).max() ?? 0)
        case .object(let object): return 1 + (object.members.map(\.value.depth).max() ?? 0)
        default: return 0
        }
    }
}
