import Foundation
import NIOCore
import Sinks
import Support

/// A distributed write as the sinks get it: one `distributed` record per query id
/// (`DistributedWriteRequest`'s records), a campaign's records named after the campaign
/// (`Campaign.queryName`), and, in front of a backend, marked so the upstream sink skips what the
/// backend must not get (the gateway's own campaigns) or already has.
struct DistributedResults: LogBatch {
    var write: DistributedWriteRequest
    /// Campaign id -> the campaign that id belongs to.
    var campaigns: [String: Campaign]
    /// The backend answered the write for the ids that are not the gateway's own.
    var backendHasOthers = false
    /// In front of a backend: the gateway's own campaign ids are never sent to it.
    var upstream = false

    func records(for node: NodeRecord, receivedAt: Date) -> [LogRecord] {
        var records = write.records(for: node, receivedAt: receivedAt)
        for i in records.indices {
            let id = records[i].queryName ?? ""
            if let campaign = campaigns[id] { records[i].queryName = campaign.queryName }
            if id.hasPrefix(Campaign.idPrefix) {
                records[i].passedThrough = upstream
            } else if backendHasOthers {
                records[i].passedThrough = true
            }
        }
        return records
    }
}

extension DistributedWriteRequest {
    /// The same write with only the results `keep` selects.
    func filtered(_ keep: (Result) -> Bool) -> DistributedWriteRequest {
        var copy = self
        copy.results = results.filter(keep)
        return copy
    }

    /// A write body holding only these results, for an upstream backend (its `node_key` is replaced
    /// on the way): `{"node_key":"","queries":{...},"statuses":{...},"messages":{...},"stats":{...}}`
    /// with each value the agent's own JSON.
    var body: ByteBuffer {
        var out = ByteBuffer()
        out.writeString("{\"node_key\":\"\"")
        func section(_ name: String, _ value: (Result) -> ByteBuffer?) {
            let present = results.compactMap { result in value(result).map { (result.id, $0) } }
            guard !present.isEmpty else { return }
            out.writeString(",\"\(name)\":{")
            for (i, (id, json)) in present.enumerated() {
                if i > 0 { out.writeString(",") }
                out.writeString(JSONString.quoted(id) + ":")
                out.writeImmutableBuffer(json)
            }
            out.writeString("}")
        }
        section("queries", \.rows)
        section("statuses", \.status)
        section("messages", \.message)
        section("stats", \.stats)
        out.writeString("}")
        return out
    }
}
