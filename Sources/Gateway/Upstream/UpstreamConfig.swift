import Crypto
import Foundation
import Logging
import Metrics
import NIOConcurrencyHelpers
import NIOCore

/// Serves each node the backend's config for it merged with the local sources of its target
/// (docs/upstream.md#config).
///
/// A target with the per-node source (`{ name: backend, upstream: true }`) gets, for every config
/// request, the backend's config fetched with the node's backend key and merged into the target's
/// other sources at that source's place, by the same merger, rules and limits as every config.
/// Merged results are kept by content (the local config and the backend's, hashed), so nodes with
/// the same backend config share one rendering, and the same content gives the same bytes: agents do
/// not reconfigure on every refresh.
///
/// When the backend cannot answer, the node gets its last good merged config (its age is logged and
/// in `upstream_config_fallback_age_seconds`), else, if it never had one (or it was forgotten: the
/// cache holds `upstream.last_good_configs` nodes, `UpstreamConfigCache`), the target's config from
/// its other sources, else an error body. Never an empty body (it would wipe the schedule) and
/// never `node_invalid`; only the backend's own `node_invalid` revokes the node.
final class UpstreamConfig: Sendable {
    private let nodes: UpstreamNodes
    private let agentConfig: AgentConfigService
    private var upstream: Upstream { nodes.upstream }
    private var logger: Logger { nodes.upstream.logger }

    /// Merged configs by content, and each node's last good one.
    let cache: UpstreamConfigCache<SHA256Digest>
    /// When an outage was last logged (one line per interval, not one per agent).
    private let lastOutageLog = NIOLockedValueBox<ContinuousClock.Instant?>(nil)
    private let fallbacks = Counter(label: "upstream_config_fallbacks")
    private let fallbackAge = Gauge(label: "upstream_config_fallback_age_seconds")

    init(nodes: UpstreamNodes, agentConfig: AgentConfigService) {
        self.nodes = nodes
        self.agentConfig = agentConfig
        cache = UpstreamConfigCache(maxNodes: nodes.upstream.configuration.lastGoodConfigs)
    }

    /// The config `node` gets.
    /// - Throws: `OsqueryError.noConfig` when nothing can be served, `.nodeInvalid` once the backend
    ///   refused the node's key (the node is then revoked).
    func config(for node: NodeRecord, origin: AgentOrigin) async throws -> AgentConfigService.Rendered {
        guard let target = agentConfig.perNodeTarget(for: node, certificate: origin.certificate) else {
            guard let config = agentConfig.config(for: node, certificate: origin.certificate) else {
                throw OsqueryError.noConfig("no osquery config is available yet")
            }
            return config
        }
        guard target.contributions != nil else { throw OsqueryError.noConfig("no osquery config is available yet") }
        guard let key = nodes.backendKey(of: node) else {
            // Enrolled before the gateway fronted a backend: it gets the local config alone.
            guard let local = target.local else { throw OsqueryError.noConfig("this node has no upstream backend key and no local config") }
            return local
        }
        let reason: String
        switch await upstream.client.post(.config, body: .nodeKey(key), nodeKey: key, origin: origin) {
        case .nodeInvalid:
            await nodes.revoke(node, during: "config")
            throw OsqueryError.nodeInvalid("node key revoked by the upstream backend")
        case .unavailable(let why):
            reason = why
        case .answered(let reply) where reply.hasError:
            reason = "the backend answered with an error body (HTTP \(reply.status))"
        case .answered(let reply):
            switch merged(reply.body, into: target, for: node) {
            case .success(let rendered): return rendered
            case .failure(let problem): reason = problem.description
            }
        }
        return try fallback(for: node, target: target, reason: reason)
    }

    /// The backend's config merged into `target`, cached by content; remembered as `node`'s last good one.
    private func merged(_ body: ByteBuffer, into target: AgentConfigService.PerNodeTarget, for node: NodeRecord) -> Result<AgentConfigService.Rendered, AgentConfigError> {
        let content: JSONObject
        do {
            guard let object = try JSONValue(parsing: body.readableBytesView).object else {
                return .failure(AgentConfigError("the backend's config is not a JSON object"))
            }
            content = object
        } catch {
            return .failure(AgentConfigError("the backend's config is not valid JSON: \(error)"))
        }
        var hasher = SHA256()
        if let local = target.local { local.json.withUnsafeReadableBytes { hasher.update(bufferPointer: $0) } }
        // Source names decide renamed query names, so they are part of the content too.
        for contribution in target.contributions ?? [] { hasher.update(data: Array((contribution.source + "\u{0}").utf8)) }
        hasher.update(data: [0, UInt8(truncatingIfNeeded: target.slot)])
        hasher.update(data: JSONValue.object(content).canonicalJSON())
        let key = hasher.finalize()
        let now = Date()
        if let cached = cache.rendered(key) {
            cache.remember(cached, key: key, for: node.id, at: now)
            return .success(cached)
        }
        let outcome = agentConfig.render(content, into: target)
        if case .success(let rendered) = outcome {
            cache.remember(rendered, key: key, for: node.id, at: now)
            for warning in rendered.warnings.prefix(20) { logger.debug("config merge: \(warning)", metadata: ["gw.node_id": "\(node.id)"]) }
        }
        return outcome
    }

    /// What `node` gets while the backend cannot give its config: its last good merged one, else the
    /// target's local config, else an error body.
    private func fallback(for node: NodeRecord, target: AgentConfigService.PerNodeTarget, reason: String) throws -> AgentConfigService.Rendered {
        let now = ContinuousClock.now
        let last = cache.lastGood(for: node.id)
        let logNow = lastOutageLog.withLockedValue { lastLog -> Bool in
            let logNow = lastLog.map { now - $0 >= .seconds(10) } ?? true
            if logNow { lastLog = now }
            return logNow
        }
        fallbacks.increment()
        let age = last.map { Date().timeIntervalSince($0.fetchedAt) }
        if let age { fallbackAge.record(age) }
        if logNow {
            logger.warning("upstream backend gives no config; serving the last good merged config (or the local one)", metadata: [
                "gw.reason": "\(reason)", "gw.node_id": "\(node.id)",
                "gw.age_seconds": "\(age.map { String(Int($0)) } ?? "none: local config")",
            ])
        }
        if let last { return last.config }
        if let local = target.local { return local }
        throw OsqueryError.noConfig("the upstream backend gives no config now and there is no earlier one; retry later")
    }
}
