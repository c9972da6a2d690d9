import Foundation

/// Copies every campaign of one store into another (`osquery-gateway store copy`, issue 12 item 5):
/// the campaign, its targeted nodes and their states, and every stored answer, so a move to
/// PostgreSQL keeps the fleet's live-query history and the campaigns still running.
///
/// Rerunning is safe: a campaign the destination already has is left alone. What is not kept is
/// when each node was sent its query (the stores take that only from a poll).
struct CampaignStoreCopy: Sendable {
    struct Counts: Sendable, Equatable {
        var copied = 0
        /// Already in the destination.
        var present = 0

        var summary: String { "campaigns: \(copied) copied, \(present) already there" }
    }

    func run(from source: any CampaignStore, to destination: any CampaignStore) async throws -> Counts {
        var counts = Counts()
        // Oldest first, as they were created.
        for campaign in try await source.campaigns().reversed() {
            if try await destination.campaign(id: campaign.id) != nil {
                counts.present += 1
                continue
            }
            // Answered and failed nodes go in as sent: recording their answers moves them on, with
            // the answer's time, status and message, as a poll would have.
            let nodes = try await source.nodes(of: campaign.id).map { node -> CampaignNode in
                guard node.state == .answered || node.state == .failed else { return node }
                return CampaignNode(nodeID: node.nodeID, hostIdentifier: node.hostIdentifier, state: .sent)
            }
            try await destination.create(campaign, nodes: nodes)
            _ = try await destination.record(try await source.answers(of: campaign.id))
            counts.copied += 1
        }
        return counts
    }
}
