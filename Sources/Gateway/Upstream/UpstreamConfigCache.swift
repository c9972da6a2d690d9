import Foundation
import NIOConcurrencyHelpers

/// The merged configs `UpstreamConfig` keeps in memory: renderings by content, and each node's last
/// good one, both bounded (docs/upstream.md#config).
///
/// - At most `maxNodes` nodes have a last good config (`upstream.last_good_configs`). Past it the
///   least recently used tenth is forgotten at once (one sort per many new nodes, not one per
///   request); such a node gets the target's local config during an outage until its next good fetch.
///   A fetch and an outage answer both count as a use.
/// - Renderings are shared by every node whose config has the same content, so a fleet with a few
///   distinct backend configs holds a few renderings whatever its size. Past `maxRendered` distinct
///   ones, those no remembered node needs are dropped; the renderings held are therefore at most
///   `max(maxRendered, maxNodes)`, and their memory is that count times a config's size (plus its gzip).
final class UpstreamConfigCache<Key: Hashable & Sendable>: Sendable {
    let maxNodes: Int
    let maxRendered: Int

    private struct Entry: Sendable {
        var key: Key
        var fetchedAt: Date
        var used: UInt64
    }

    private struct State: Sendable {
        var rendered: [Key: AgentConfigService.Rendered] = [:]
        var lastGood: [String: Entry] = [:]
        var clock: UInt64 = 0
    }

    private let state = NIOLockedValueBox(State())

    init(maxNodes: Int, maxRendered: Int = 1024) {
        self.maxNodes = max(1, maxNodes)
        self.maxRendered = max(1, maxRendered)
    }

    /// The rendering of `key`'s content, if it is kept.
    func rendered(_ key: Key) -> AgentConfigService.Rendered? {
        state.withLockedValue { $0.rendered[key] }
    }

    /// Keeps `rendered` as the content `key` and as `nodeID`'s last good config, fetched at `date`.
    func remember(_ rendered: AgentConfigService.Rendered, key: Key, for nodeID: String, at date: Date) {
        state.withLockedValue { state in
            state.clock += 1
            state.lastGood[nodeID] = Entry(key: key, fetchedAt: date, used: state.clock)
            if state.lastGood.count > maxNodes { forgetLeastRecentlyUsed(&state) }
            if state.rendered[key] == nil, state.rendered.count >= maxRendered { dropUnneeded(&state) }
            state.rendered[key] = rendered
        }
    }

    /// `nodeID`'s last good config and when it was fetched; nil when it has none (never fetched, or forgotten).
    func lastGood(for nodeID: String) -> (config: AgentConfigService.Rendered, fetchedAt: Date)? {
        state.withLockedValue { state -> (config: AgentConfigService.Rendered, fetchedAt: Date)? in
            guard let entry = state.lastGood[nodeID], let rendered = state.rendered[entry.key] else { return nil }
            state.clock += 1
            state.lastGood[nodeID]?.used = state.clock
            return (rendered, entry.fetchedAt)
        }
    }

    /// Nodes with a last good config, and distinct renderings kept.
    var counts: (nodes: Int, rendered: Int) {
        state.withLockedValue { ($0.lastGood.count, $0.rendered.count) }
    }

    private func forgetLeastRecentlyUsed(_ state: inout State) {
        let keep = max(1, maxNodes - maxNodes / 10)
        let oldest = state.lastGood.sorted { $0.value.used < $1.value.used }.prefix(state.lastGood.count - keep)
        for (nodeID, _) in oldest { state.lastGood[nodeID] = nil }
        if state.rendered.count > maxRendered { dropUnneeded(&state) }
    }

    private func dropUnneeded(_ state: inout State) {
        let needed = Set(state.lastGood.values.map(\.key))
        state.rendered = state.rendered.filter { needed.contains($0.key) }
    }
}
