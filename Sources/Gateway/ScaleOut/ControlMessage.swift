import Support

/// One control event that gateways sharing a PostgreSQL database tell each other, as the payload
/// of a `NOTIFY` on `ControlMessage.channel` (issue 12 item 3).
///
/// Only rare events are sent: a key that stopped being valid (a revocation, or the old key of a
/// node enrolled again) and a campaign created or cancelled. Never one per request, result or
/// log line: the stores send them inside the transaction that makes the change, so a listener
/// hears of it once it is committed, and a listener that missed some (it was reconnecting) reloads
/// everything instead.
enum ControlMessage: Sendable, Equatable {
    /// The node key with this SHA-256 hash is no longer what the caches hold: drop it.
    case keyInvalidated([UInt8])
    /// The campaign with this id was created or cancelled: load it again.
    case campaignChanged(String)

    /// The `LISTEN` channel, in lower case (`pg_notify` takes it as given, `LISTEN` quotes it).
    static let channel = "osquery_gateway_control"

    /// `key:<64 hex digits>` or `campaign:<id>`, well below PostgreSQL's 8000-byte payload limit.
    var payload: String {
        switch self {
        case .keyInvalidated(let hash): return "key:" + Hex.encode(hash)
        case .campaignChanged(let id): return "campaign:" + id
        }
    }

    /// Reads a payload back; nil for anything else (a newer gateway's event, someone else's NOTIFY).
    init?(payload: String) {
        if payload.hasPrefix("key:") {
            guard let hash = Hex.decode(payload.dropFirst(4)), !hash.isEmpty else { return nil }
            self = .keyInvalidated(hash)
        } else if payload.hasPrefix("campaign:") {
            let id = String(payload.dropFirst(9))
            guard !id.isEmpty else { return nil }
            self = .campaignChanged(id)
        } else {
            return nil
        }
    }
}
