import Foundation
import Logging
import NIOConcurrencyHelpers
import Testing
@testable import Gateway

/// A real SQLite node store that counts key look-ups and can be taken down.
final class CountingNodeStore: NodeStore {
    let base: SQLiteNodeStore
    private let state = NIOLockedValueBox((lookups: 0, down: false))

    init() throws {
        base = try SQLiteNodeStore(path: makeTemporaryDirectory("counting") + "/nodes.sqlite")
    }

    var lookups: Int { state.withLockedValue { $0.lookups } }
    func setDown(_ down: Bool) { state.withLockedValue { $0.down = down } }

    struct Down: Error {}

    func node(keyHash: [UInt8]) async throws -> NodeRecord? {
        let down = state.withLockedValue { state in
            state.lookups += 1
            return state.down
        }
        if down { throw Down() }
        return try await base.node(keyHash: keyHash)
    }

    func node(certificateFingerprint: String) async throws -> NodeRecord? { try await base.node(certificateFingerprint: certificateFingerprint) }
    func node(id: String) async throws -> NodeRecord? { try await base.node(id: id) }
    func save(_ node: NodeRecord) async throws -> NodeRecord? { try await base.save(node) }
    func revoke(_ node: NodeRecord, at date: Date) async throws { try await base.revoke(node, at: date) }
    func allNodes() async throws -> [NodeRecord] { try await base.allNodes() }
    func recordLastSeen(_ times: [String: Date]) async throws { try await base.recordLastSeen(times) }
    func count() async throws -> Int { try await base.count() }
}

/// The authenticator's key cache (issue 12 item 3): known keys cost no store read until they are
/// invalidated, unknown keys are remembered briefly, outages are never remembered.
@Suite struct NodeKeyCacheTests {
    static let unknownBody = #"{"error":"unknown node key","node_invalid":true}"#

    func makeAuthenticator(_ store: CountingNodeStore, unknownKeyTTL: Duration = .seconds(5)) -> NodeAuthenticator {
        var logger = Logger(label: "node-key-cache-tests")
        logger.logLevel = .critical
        return NodeAuthenticator(
            store: store, certificateEnrollment: false, lastSeen: LastSeenRecorder(store: store, logger: logger),
            unknownKeyTTL: unknownKeyTTL)
    }

    /// The node's id, or the error body the agent would get.
    func outcome(_ authenticator: NodeAuthenticator, _ key: String) async -> String {
        do {
            return "node " + (try await authenticator.authenticate(nodeKey: key, certificate: nil)).id
        } catch let error as OsqueryError {
            return error.body
        } catch {
            return "\(error)"
        }
    }

    func enroll(_ name: String, in store: CountingNodeStore) async throws -> (key: String, node: NodeRecord) {
        let key = "key-\(name)-\(UUID().uuidString)"
        let node = NodeRecord(
            id: "id-\(name)", keyHash: NodeKey.hash(key), hostKey: "host-\(name)", hostIdentifier: name, platformType: "linux",
            hostDetails: "{}", secretName: "default", certificateFingerprint: nil, enrolledAt: Date(), lastSeen: nil)
        _ = try await store.save(node)
        return (key, node)
    }

    @Test func anUnknownKeyIsAnsweredFromMemoryUntilItsTTLRunsOut() async throws {
        let store = try CountingNodeStore()
        // Seconds, not milliseconds: two calls on a loaded machine can be further apart than that.
        let authenticator = makeAuthenticator(store, unknownKeyTTL: .seconds(3))
        #expect(await outcome(authenticator, "no-such-key") == Self.unknownBody)
        #expect(await outcome(authenticator, "no-such-key") == Self.unknownBody)
        #expect(store.lookups == 1)
        try await Task.sleep(for: .milliseconds(3_200))
        #expect(await outcome(authenticator, "no-such-key") == Self.unknownBody)
        #expect(store.lookups == 2)
    }

    @Test func anOutageIsNeverRememberedAsAnUnknownKey() async throws {
        let store = try CountingNodeStore()
        let authenticator = makeAuthenticator(store)
        let (key, node) = try await enroll("web-1", in: store)
        store.setDown(true)
        #expect(await outcome(authenticator, key) == #"{"error":"node store unavailable"}"#)
        #expect(await outcome(authenticator, "no-such-key") == #"{"error":"node store unavailable"}"#)
        store.setDown(false)
        #expect(await outcome(authenticator, key) == "node \(node.id)")
        #expect(await outcome(authenticator, "no-such-key") == Self.unknownBody)
    }

    @Test func aKnownKeyIsReadOnceUntilItIsForgotten() async throws {
        let store = try CountingNodeStore()
        let authenticator = makeAuthenticator(store)
        let (key, node) = try await enroll("web-1", in: store)
        for _ in 0..<3 { #expect(await outcome(authenticator, key) == "node \(node.id)") }
        #expect(store.lookups == 1)
        authenticator.forget(keyHash: node.keyHash)
        #expect(await outcome(authenticator, key) == "node \(node.id)")
        #expect(store.lookups == 2)
        authenticator.forgetAll()
        #expect(authenticator.cachedKeys == 0)
        #expect(await outcome(authenticator, key) == "node \(node.id)")
        #expect(store.lookups == 3)
    }

    @Test func theBackstopForgetsOnlyKeysThatChanged() async throws {
        let store = try CountingNodeStore()
        let authenticator = makeAuthenticator(store)
        let (keyA, nodeA) = try await enroll("web-1", in: store)
        let (keyB, nodeB) = try await enroll("web-2", in: store)
        let (keyC, nodeC) = try await enroll("web-3", in: store)
        for key in [keyA, keyB, keyC] { _ = await outcome(authenticator, key) }
        #expect(store.lookups == 3)
        // web-1 unchanged, web-2 revoked elsewhere, web-3 enrolled again elsewhere (another key).
        try await store.revoke(nodeB, at: Date())
        let dropped = authenticator.forgetStale([
            nodeA.id: .init(keyHash: nodeA.keyHash, revoked: false),
            nodeB.id: .init(keyHash: nodeB.keyHash, revoked: true),
            nodeC.id: .init(keyHash: NodeKey.hash("another key"), revoked: false),
        ])
        #expect(dropped == 2)
        #expect(await outcome(authenticator, keyA) == "node \(nodeA.id)")
        #expect(store.lookups == 3)
        #expect(await outcome(authenticator, keyB) == #"{"error":"node key revoked","node_invalid":true}"#)
        #expect(store.lookups == 4)
        _ = await outcome(authenticator, keyC)
        #expect(store.lookups == 5)
    }
}
