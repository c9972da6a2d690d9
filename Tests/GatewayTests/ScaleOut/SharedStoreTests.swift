import Foundation
import NIOHTTP1
import PostgresNIO
import Support
import Testing
@testable import Gateway

/// Two gateways on one PostgreSQL database (issue 12 items 2 and 3): what one learns reaches the
/// other's caches through LISTEN/NOTIFY within seconds, the backstop reload catches what a lost
/// notification would miss, a reconnected listener starts from an empty cache, and a node with a
/// warm cache polls without a database round trip.
@Suite(.enabled(if: StoreKind.postgresURL != nil, "needs POSTGRES_URL (make test starts PostgreSQL)"))
struct SharedStoreTests {
    static let revokedBody = #"{"error":"node key revoked","node_invalid":true}"#
    static let unknownBody = #"{"error":"unknown node key","node_invalid":true}"#
    static let noQueries = #"{"queries":{}}"#

    /// Sends `request` with `key` until the reply is no longer accepted (the emulator drops a key
    /// that got node_invalid, so it is put back each time); returns that reply and how long it took.
    func firstRefusal(of agent: AgentEmulator, key: String?, within timeout: Duration = .seconds(5),
                      _ request: (AgentEmulator) async throws -> AgentEmulator.Reply) async throws -> (reply: AgentEmulator.Reply, after: Duration)? {
        let start = ContinuousClock.now
        return try await firstValue(within: timeout) { () async throws -> (reply: AgentEmulator.Reply, after: Duration)? in
            agent.nodeKey = key
            let reply = try await request(agent)
            if reply.outcome == .accepted { return nil }
            return (reply: reply, after: ContinuousClock.now - start)
        }
    }

    @Test func aKeyRevokedOnOneGatewayIsRefusedOnTheOtherWithinSeconds() async throws {
        try await withTwoGateways { a, b in
            let viaA = try a.agent("web-1")
            try await viaA.enroll()
            let viaB = try b.agent(like: viaA)
            let key = viaA.nodeKey
            // B reads the node once and caches it; from now on only a notification can change its mind.
            #expect(try await viaB.config().outcome == .accepted)
            #expect(try await viaB.distributedRead().body == Self.noQueries)
            let revoked = try await a.object(.POST, "/api/nodes/web-1/revoke")
            #expect((revoked["node"] as? [String: Any])?["revoked_at"] is String)
            let refusal = try await firstRefusal(of: viaB, key: key) { try await $0.config() }
            let refused = try #require(refusal)
            #expect(refused.reply.body == Self.revokedBody)
            #expect(refused.after < .seconds(5))
            viaB.nodeKey = key
            #expect(try await viaB.distributedRead().body == Self.revokedBody)
            try await viaA.shutdown()
            try await viaB.shutdown()
        }
    }

    @Test func aNodeEnrolledAgainOnOneGatewayLosesItsOldKeyOnTheOther() async throws {
        try await withTwoGateways { a, b in
            let viaA = try a.agent("web-1")
            try await viaA.enroll()
            let oldKey = viaA.nodeKey
            let viaB = try b.agent(like: viaA)
            #expect(try await viaB.config().outcome == .accepted)
            // The same host (same instance_id) enrolls again through A: a new key, the old one dead everywhere.
            try await viaA.enroll()
            let newKey = viaA.nodeKey
            #expect(newKey != oldKey)
            let refusal = try await firstRefusal(of: viaB, key: oldKey) { try await $0.config() }
            let refused = try #require(refusal)
            #expect(refused.reply.body == Self.unknownBody)
            viaB.nodeKey = newKey
            #expect(try await viaB.config().outcome == .accepted)
            try await viaA.shutdown()
            try await viaB.shutdown()
        }
    }

    @Test func aCampaignCreatedOnOneGatewayIsServedByTheOtherAndAnsweredOnce() async throws {
        try await withTwoGateways { a, b in
            let viaA = try a.agent("web-1")
            try await viaA.enroll()
            let viaB = try b.agent(like: viaA)
            #expect(try await viaB.distributedRead().body == Self.noQueries)
            let id = try await a.start(["sql": "SELECT 1 AS one;", "all": true, "name": "probe"])
            #expect(id.hasPrefix("gw-"))
            let expected = #"{"accelerate":60,"queries":{"\#(id)":"SELECT 1 AS one;"}}"#
            // The notification is asynchronous: B serves it from the first poll after it arrives.
            let served = try await firstValue { () async throws -> String? in
                let body = try await viaB.distributedRead().body
                return body == Self.noQueries ? nil : body
            }
            #expect(served == expected)
            // Sent once whichever gateway the node polls next: A, which created it, has nothing left.
            #expect(try await viaA.distributedRead().body == Self.noQueries)
            #expect(try await viaB.distributedRead().body == Self.noQueries)
            #expect(try await viaB.distributedWrite([id: [["one": "1"]]]).body == "{}")
            // osquery resends a write it got no answer for, here through the other gateway: stored once.
            #expect(try await viaA.distributedWrite([id: [["one": "again"]]]).body == "{}")
            #expect(try await a.states(id) == ["web-1": "answered"])
            let shown = try await b.object(.GET, "/api/queries/\(id)")
            let nodes = try #require(shown["nodes"] as? [[String: Any]])
            #expect(nodes.map { ($0["rows"] as? [[String: String]]) ?? [] } == [[["one": "1"]]])
            try await viaA.shutdown()
            try await viaB.shutdown()
        }
    }

    @Test func aCampaignCancelledOnOneGatewayLeavesTheOthersIndex() async throws {
        try await withTwoGateways { a, b in
            let viaA = try a.agent("web-1")
            try await viaA.enroll()
            let id = try await a.start(["sql": "SELECT 2;", "all": true])
            #expect(a.gateway.controlChannel?.campaigns.index.campaign(id) != nil)
            let loaded = await firstValue { b.gateway.controlChannel?.campaigns.index.campaign(id) }
            #expect(loaded?.id == id)
            let (status, _) = try await b.call(.POST, "/api/queries/\(id)/cancel")
            #expect(status == 200)
            let dropped = await firstValue { () async -> Bool? in
                a.gateway.controlChannel?.campaigns.index.campaign(id) == nil ? true : nil
            }
            #expect(dropped == true)
            #expect(try await viaA.distributedRead().body == Self.noQueries)
            #expect(try await a.states(id) == ["web-1": "cancelled"])
            try await viaA.shutdown()
        }
    }

    @Test func aRevocationWhoseNotificationWasLostIsCaughtByTheBackstopReload() async throws {
        try await withTwoGateways(reloadEvery: .seconds(1)) { a, b in
            let viaA = try a.agent("web-1")
            try await viaA.enroll()
            let key = viaA.nodeKey
            let viaB = try b.agent(like: viaA)
            #expect(try await viaB.config().outcome == .accepted)
            // Revoked behind the gateways' backs: no NOTIFY, as if it had been lost.
            let pool = try #require(a.control?.nodes.pool)
            try await pool.rows("UPDATE gateway_nodes SET revoked_at = \(Date().timeIntervalSince1970)")
            let refusal = try await firstRefusal(of: viaB, key: key, within: .seconds(10)) { try await $0.config() }
            let refused = try #require(refusal)
            #expect(refused.reply.body == Self.revokedBody)
            try await viaA.shutdown()
            try await viaB.shutdown()
        }
    }

    @Test func aReconnectedListenerStartsFromAnEmptyCache() async throws {
        try await withTwoGateways { a, b in
            let viaA = try a.agent("web-1")
            try await viaA.enroll()
            let viaB = try b.agent(like: viaA)
            #expect(try await viaB.config().outcome == .accepted)
            let control = try #require(b.control)
            #expect(control.authenticator.cachedKeys == 1)
            let resets = control.resets
            // The database drops the listening connections (a failover, an idle-session killer).
            let pool = try #require(a.control?.nodes.pool)
            try await pool.rows("""
                SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                WHERE application_name = \(PostgresControlChannel.applicationName) AND datname = current_database()
                """)
            #expect(await b.waitUntilListening(resets: resets + 1))
            #expect(control.authenticator.cachedKeys == 0)
            // Meanwhile nothing was lost: the node reads the store once and is cached again.
            #expect(try await viaB.config().outcome == .accepted)
            #expect(control.authenticator.cachedKeys == 1)
            try await viaA.shutdown()
            try await viaB.shutdown()
        }
    }

    @Test func anEmptyPollWithAWarmCacheMakesNoDatabaseRoundTrip() async throws {
        // The backstop reload is kept out of the window; the last-seen batches are not counted.
        try await withTwoGateways(reloadEvery: .seconds(3_600)) { a, _ in
            let agent = try a.agent("web-1")
            try await agent.enroll()
            let pool = try #require(a.control?.nodes.pool)
            #expect(try await agent.distributedRead().body == Self.noQueries)
            let before = pool.requestRoundTrips
            var bodies = Set<String>()
            for _ in 0..<200 {
                bodies.insert(try await agent.distributedRead().body)
                if bodies.count > 1 { break }
            }
            #expect(try await agent.config().outcome == .accepted)
            #expect(bodies == [Self.noQueries])
            #expect(pool.requestRoundTrips - before == 0)
            try await agent.shutdown()
        }
    }
}
