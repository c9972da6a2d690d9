import Foundation
import NIOConcurrencyHelpers

/// The active campaigns in memory: which nodes still have work to be sent, and which answers are
/// still awaited. A distributed read from a node with nothing pending costs one locked dictionary
/// lookup and touches no database (at 50k hosts about 99.7% of polls are empty).
final class CampaignIndex: Sendable {
    private struct State {
        /// Active campaigns by id.
        var campaigns: [String: Campaign] = [:]
        /// Node id -> ids of active campaigns whose query it has not been sent yet.
        var pending: [String: [String]] = [:]
        /// Campaign id -> nodes it still waits for (pending or sent).
        var outstanding: [String: Set<String>] = [:]
    }

    private let state = NIOLockedValueBox(State())

    /// Adds an active campaign with its nodes' stored states (at creation all pending; after a
    /// restart as the store has them).
    func add(_ campaign: Campaign, nodes: [CampaignNode]) {
        state.withLockedValue { Self.add(campaign, nodes: nodes, to: &$0) }
    }

    private static func add(_ campaign: Campaign, nodes: [CampaignNode], to state: inout State) {
        state.campaigns[campaign.id] = campaign
        var waiting = Set<String>()
        for node in nodes where node.state.isOutstanding {
            waiting.insert(node.nodeID)
            if node.state == .pending { state.pending[node.nodeID, default: []].append(campaign.id) }
        }
        state.outstanding[campaign.id] = waiting
    }

    /// Replaces everything with `loaded` (the active campaigns with their nodes' stored states), in
    /// one step so a poll sees either the old index or the new one: the backstop reload of gateways
    /// sharing a store, which catches up with whatever their notifications missed.
    /// - Returns: the campaigns that were in the index and are not in `loaded`.
    func replace(with loaded: [(campaign: Campaign, nodes: [CampaignNode])]) -> [Campaign] {
        state.withLockedValue { state in
            let kept = Set(loaded.map { $0.campaign.id })
            let dropped = state.campaigns.values.filter { !kept.contains($0.id) }
            var fresh = State()
            for (campaign, nodes) in loaded { Self.add(campaign, nodes: nodes, to: &fresh) }
            state = fresh
            return dropped
        }
    }

    /// Takes `nodeID`'s pending work (it counts as sent from now on): the campaigns whose SQL it
    /// should run. Empty, without allocating, when there is none.
    func takeWork(for nodeID: String, at now: Date) -> [Campaign] {
        state.withLockedValue { state in
            guard let ids = state.pending.removeValue(forKey: nodeID) else { return [] }
            return ids.compactMap { id in
                guard let campaign = state.campaigns[id], campaign.isActive(at: now) else { return nil }
                return campaign
            }
        }
    }

    /// Gives work back that could not be marked sent, so the next poll offers it again.
    func giveBack(_ campaigns: [Campaign], to nodeID: String) {
        state.withLockedValue { state in
            for campaign in campaigns where state.campaigns[campaign.id] != nil {
                state.pending[nodeID, default: []].append(campaign.id)
            }
        }
    }

    /// The active campaign `id` if it still waits for `nodeID`'s answer; answers for anything else
    /// (another backend's query, an ended campaign, a node it never asked) are not stored with it.
    func awaiting(_ id: String, from nodeID: String, at now: Date) -> Campaign? {
        state.withLockedValue { state in
            guard let campaign = state.campaigns[id], campaign.isActive(at: now),
                state.outstanding[id]?.contains(nodeID) == true
            else { return nil }
            return campaign
        }
    }

    /// Whether `id` names an active campaign, whatever node asks.
    func campaign(_ id: String) -> Campaign? {
        state.withLockedValue { $0.campaigns[id] }
    }

    /// Notes `nodeID`'s answer to `id`.
    func answered(_ id: String, by nodeID: String) {
        state.withLockedValue { state in
            state.outstanding[id]?.remove(nodeID)
            if state.pending[nodeID] != nil {
                state.pending[nodeID]!.removeAll { $0 == id }
                if state.pending[nodeID]!.isEmpty { state.pending[nodeID] = nil }
            }
        }
    }

    /// Forgets a campaign (cancelled or expired).
    func remove(_ id: String) {
        state.withLockedValue { state in
            state.campaigns[id] = nil
            for node in state.outstanding.removeValue(forKey: id) ?? [] {
                guard state.pending[node] != nil else { continue }
                state.pending[node]!.removeAll { $0 == id }
                if state.pending[node]!.isEmpty { state.pending[node] = nil }
            }
        }
    }

    /// Active campaigns that have expired by `now` or have no node left to wait for.
    func finished(at now: Date) -> [(campaign: Campaign, expired: Bool)] {
        state.withLockedValue { state in
            state.campaigns.values.compactMap { campaign in
                if now >= campaign.expiresAt { return (campaign, true) }
                if state.outstanding[campaign.id]?.isEmpty ?? true { return (campaign, false) }
                return nil
            }
        }
    }

    /// How many nodes have work waiting, for metrics and tests.
    var nodesWithWork: Int { state.withLockedValue { $0.pending.count } }
}
