import Foundation
import Logging
import Metrics
import NIOConcurrencyHelpers

/// Learns node keys the backend gave out before the gateway existed (docs/upstream.md#learned-keys).
///
/// A key the store does not know is checked with the backend once, with a config request carrying
/// it (the cheapest request every backend authenticates):
/// - answered (a JSON object, no `error`): the key is good. It becomes a node of this gateway,
///   stored by the key's hash as every key is, with the same key sealed as its backend key, so the
///   agent keeps its key and never re-enrolls; from then on it is served, and logs, without asking
///   the backend again, also while the backend is down;
/// - `node_invalid`: the key is unknown there too: `node_invalid`, and the refusal is remembered for
///   `refusedKeyMemory`, so an agent retrying a dead key does not cost a backend request each time;
/// - anything else (down, slow, 5xx, garbage, an `error` body): an error body. Never
///   `node_invalid`: an outage must not make the fleet re-enroll.
///
/// A learned node knows no host details (an agent sends them only when enrolling): its host
/// identifier and platform stay empty until it enrolls again, and it gets the default target.
/// When the backend hands every node the same key, every agent holding it is that one learned node.
final class UpstreamKeyLearner: UnknownNodeKeys {
    private let upstream: Upstream
    private let store: any NodeStore
    private let refused = NIOLockedValueBox([[UInt8]: ContinuousClock.Instant]())
    private let learned = Counter(label: "upstream_learned_keys")

    init(upstream: Upstream, store: any NodeStore) {
        self.upstream = upstream
        self.store = store
    }

    func resolve(nodeKey: String, keyHash: [UInt8], origin: AgentOrigin) async throws -> NodeRecord {
        let now = ContinuousClock.now
        let known = refused.withLockedValue { refused -> Bool in
            guard let until = refused[keyHash] else { return false }
            if until > now { return true }
            refused[keyHash] = nil
            return false
        }
        if known { throw OsqueryError.nodeInvalid("unknown node key") }
        switch await upstream.client.post(.config, body: .nodeKey(nodeKey), nodeKey: nodeKey, origin: origin) {
        case .nodeInvalid:
            let until = now + upstream.configuration.refusedKeyMemory
            refused.withLockedValue { refused in
                if refused.count > 100_000 { refused = refused.filter { $0.value > now } }
                // Still full: random keys faster than they expire. Forget them all rather than grow
                // (a forgotten key only costs one more question to the backend).
                if refused.count > 100_000 { refused.removeAll(keepingCapacity: true) }
                refused[keyHash] = until
            }
            throw OsqueryError.nodeInvalid("unknown node key")
        case .unavailable(let reason):
            upstream.logger.warning("cannot check an unknown node key with the upstream backend", metadata: ["gw.reason": "\(reason)"])
            throw OsqueryError.unavailable("upstream backend unavailable; this node key cannot be checked now")
        case .answered(let reply) where reply.hasError:
            upstream.logger.warning("upstream backend answered an unknown node key with an error body", metadata: ["gw.status": "\(reply.status)"])
            throw OsqueryError.unavailable("upstream backend could not check this node key now")
        case .answered:
            return try await learn(nodeKey: nodeKey, keyHash: keyHash)
        }
    }

    private func learn(nodeKey: String, keyHash: [UInt8]) async throws -> NodeRecord {
        let sealed: [UInt8]
        do {
            sealed = try upstream.sealer.seal(nodeKey)
        } catch {
            upstream.logger.error("cannot seal a learned node key", metadata: ["gw.error": "\(error)"])
            throw OsqueryError.unavailable("node key cannot be stored now")
        }
        let now = Date()
        let record = NodeRecord(
            id: UUID().uuidString.lowercased(), keyHash: keyHash, hostKey: nil, hostIdentifier: "", platformType: "",
            hostDetails: "{}", secretName: nil, certificateFingerprint: nil, enrolledAt: now, lastSeen: now, upstreamKey: sealed)
        do {
            _ = try await store.save(record)
        } catch {
            // Two requests with the same new key learned it at once: the first one's node stands.
            if let existing = try? await store.node(keyHash: keyHash) { return existing }
            upstream.logger.error("node store write failed while learning a node key", metadata: ["gw.error": "\(error)"])
            throw OsqueryError.unavailable("node store unavailable")
        }
        learned.increment()
        upstream.logger.notice("node key learned from the upstream backend", metadata: ["gw.node_id": "\(record.id)"])
        return record
    }
}
