import Foundation
import Logging
import NIOConcurrencyHelpers
import Support

/// Decides which node a request comes from: by node key, and by verified client certificate.
///
/// Rules (docs/protocol.md#errors, docs/threat-model.md):
/// - a key is looked up by its hash; unknown or empty → `nodeInvalid` (the agent re-enrolls), unless
///   `unknownKeys` (an upstream backend) vouches for an unknown one;
/// - a key whose node was revoked (the upstream backend refused it) → `nodeInvalid`;
/// - a node enrolled with a certificate is bound to it: its key with another certificate, or none,
///   → `certificateMismatch` (403, no re-enrollment: that cannot fix it);
/// - no key but a verified certificate, with certificate enrollment on → the node bound to that
///   certificate, registered on first sight (osquery `--disable_enrollment` deployments);
/// - a store failure → `unavailable`, never `nodeInvalid`, so an outage cannot re-enroll a fleet.
///
/// Known nodes are cached by key hash, so polling agents cost no database read, and keys found
/// unknown are remembered for `unknownKeyTTL` (`NodeKeyCache`); re-enrollment through this process
/// evicts the old key at once, and through another gateway sharing the store when its
/// notification arrives (`forget`, `PostgresControlChannel`).
final class NodeAuthenticator: Sendable {
    /// How long a key found unknown is answered `node_invalid` without asking the store again:
    /// short, because nothing else ever makes such a key known (keys are minted at enrollment and
    /// cached by the gateway that mints them), and it only spares the store a bad client's retries.
    static let defaultUnknownKeyTTL: Duration = .seconds(5)

    private let store: any NodeStore
    private let certificateEnrollment: Bool
    private let cache: NIOLockedValueBox<NodeKeyCache>
    private let unknownKeys: (any UnknownNodeKeys)?
    let lastSeen: LastSeenRecorder

    init(store: any NodeStore, certificateEnrollment: Bool, lastSeen: LastSeenRecorder, maxCached: Int = 200_000,
         unknownKeyTTL: Duration = NodeAuthenticator.defaultUnknownKeyTTL, unknownKeys: (any UnknownNodeKeys)? = nil) {
        self.store = store
        self.certificateEnrollment = certificateEnrollment
        self.lastSeen = lastSeen
        cache = NIOLockedValueBox(NodeKeyCache(capacity: maxCached, unknownTTL: unknownKeyTTL))
        self.unknownKeys = unknownKeys
    }

    /// The node behind `nodeKey` and `certificate`.
    /// - Parameter origin: the request's connection, for an upstream backend asked about an unknown key.
    /// - Throws: `OsqueryError` as described above.
    func authenticate(nodeKey: String?, certificate: PeerCertificate?, origin: AgentOrigin? = nil) async throws -> NodeRecord {
        let node: NodeRecord
        if let nodeKey, !nodeKey.isEmpty {
            node = try await byKey(nodeKey, origin: origin ?? AgentOrigin(certificate: certificate))
            if let bound = node.certificateFingerprint, bound != certificate?.fingerprint {
                throw OsqueryError.certificateMismatch(
                    certificate == nil ? "this node key needs its client certificate" : "this node key is bound to another client certificate")
            }
        } else if let certificate, certificateEnrollment {
            node = try await byCertificate(certificate)
        } else {
            throw OsqueryError.nodeInvalid("missing node key")
        }
        lastSeen.record(node.id)
        return node
    }

    /// Forgets a key that stopped working (re-enrollment replaced it) and remembers the new one.
    func replaced(_ old: NodeRecord?, with new: NodeRecord) {
        cache.withLockedValue { cache in
            if let old { cache.remove(old.keyHash) }
            cache.insert(new)
        }
    }

    /// Forgets what is cached for one key (another gateway revoked it or enrolled its node again):
    /// its next request reads the store.
    func forget(keyHash: [UInt8]) {
        cache.withLockedValue { $0.remove(keyHash) }
    }

    /// Forgets every cached key: after the invalidation channel was down, what it missed is unknown.
    func forgetAll() {
        cache.withLockedValue { $0.removeAll() }
    }

    /// Forgets the cached keys that `current` (node id -> the stored key and revocation, for nodes
    /// enrolled or revoked lately) shows to be out of date; the backstop for missed notifications.
    /// - Returns: how many keys were forgotten.
    @discardableResult
    func forgetStale(_ current: [String: NodeKeyCache.Current]) -> Int {
        cache.withLockedValue { $0.dropStale(current) }
    }

    /// How many keys are cached as known, for tests and metrics.
    var cachedKeys: Int { cache.withLockedValue { $0.count } }

    /// Revokes `node`'s enrollment (the upstream backend refused its key, or an operator revoked
    /// it through the admin API): from now on its key gets
    /// `node_invalid`, here and from the store, until the host enrolls again.
    /// - Throws: when the store cannot record it (the key then keeps working).
    func revoke(_ node: NodeRecord) async throws {
        let now = Date()
        try await store.revoke(node, at: now)
        var revoked = node
        revoked.revokedAt = now
        // Cached whether or not it was: a request that read the row before this revocation must
        // not cache its stale copy afterwards (see `byKey`).
        cache.withLockedValue { $0.insert(revoked) }
    }

    private func byKey(_ nodeKey: String, origin: AgentOrigin) async throws -> NodeRecord {
        let hash = NodeKey.hash(nodeKey)
        let now = ContinuousClock.now
        let (cached, generation) = cache.withLockedValue { ($0.lookup(hash, at: now), $0.generation) }
        let node: NodeRecord
        switch cached {
        case .known(let known):
            node = known
        case .unknown:
            throw OsqueryError.nodeInvalid("unknown node key")
        case .miss:
            let found: NodeRecord?
            do {
                found = try await store.node(keyHash: hash)
            } catch {
                throw OsqueryError.unavailable("node store unavailable")
            }
            let loaded: NodeRecord
            if let found, ConstantTime.equals(found.keyHash, hash) {
                loaded = found
            } else if let unknownKeys {
                loaded = try await unknownKeys.resolve(nodeKey: nodeKey, keyHash: hash, origin: origin)
            } else {
                // A definite answer from the store (an outage threw above): remembered briefly.
                cache.withLockedValue { cache in
                    if cache.generation == generation { cache.insertUnknown(hash, at: now) }
                }
                throw OsqueryError.nodeInvalid("unknown node key")
            }
            // What another request cached meanwhile (a revocation) wins over this read, and a read
            // older than an invalidation is used once but not cached.
            node = cache.withLockedValue { cache in
                if case .known(let newer) = cache.lookup(hash, at: now) { return newer }
                if cache.generation == generation { cache.insert(loaded) }
                return loaded
            }
        }
        if node.revokedAt != nil { throw OsqueryError.nodeInvalid("node key revoked") }
        return node
    }

    private func byCertificate(_ certificate: PeerCertificate) async throws -> NodeRecord {
        do {
            if let found = try await store.node(certificateFingerprint: certificate.fingerprint) { return found }
            let node = NodeRecord(
                id: UUID().uuidString.lowercased(), keyHash: NodeKey.hash(NodeKey.generate()),
                hostKey: "certificate:" + certificate.fingerprint,
                hostIdentifier: certificate.commonName ?? certificate.fingerprint, platformType: "", hostDetails: "{}",
                secretName: nil, certificateFingerprint: certificate.fingerprint, enrolledAt: Date(), lastSeen: nil,
                certificateNames: certificate.names)
            _ = try await store.save(node)
            return node
        } catch let error as OsqueryError {
            throw error
        } catch {
            throw OsqueryError.unavailable("node store unavailable")
        }
    }
}
