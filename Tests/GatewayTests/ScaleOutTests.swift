import Foundation
import NIOHTTP1
import Testing
@testable import Gateway

/// Two real gateway processes on one PostgreSQL node store behind a real HAProxy in TCP mode, the
/// agents opening a new connection for every request as osquery 5.23 does (issue 12 item 7): any
/// request works on any gateway, a revocation on one reaches the other, and a gateway killed
/// mid-load costs no `node_invalid` and no acknowledged line.
@Suite(.enabled(if: gatewayBinaryBuilt && StoreKind.postgresURL != nil && HAProxy.installed,
                "needs the built binary, POSTGRES_URL (make test starts PostgreSQL) and haproxy"))
struct ScaleOutTests {
    static let revoked = #"{"error":"node key revoked","node_invalid":true}"#

    @Test func twoGatewaysBehindHAProxyServeEveryRequestAndLoseNothingWhenOneIsKilled() async throws {
        try await StoreKind.withDatabase { database in
            let fleet = try GatewayFleet(count: 2, database: database)
            do {
                // Started together: the schema is migrated once, under the advisory lock.
                try fleet.launch(0)
                try fleet.launch(1)
                try await fleet.serving(0)
                try await fleet.serving(1)
                let proxy = try await HAProxy(backends: fleet.backends)
                defer { proxy.stop() }
                try await Self.enrolledOnOneServedByTheOther(fleet)
                try await Self.aRevocationOnOneIsRefusedByTheOther(fleet)
                try await Self.aCampaignAndACarveSpreadOverBoth(fleet)
                try await Self.oneGatewayKilledMidLoad(fleet, proxy)
            } catch {
                await fleet.shutdown()
                throw error
            }
            await fleet.shutdown()
        }
    }

    /// Enroll through gateway 0; config, logs and a poll through gateway 1, exact bodies.
    static func enrolledOnOneServedByTheOther(_ fleet: GatewayFleet) async throws {
        let viaFirst = try fleet.agent(fleet.baseURL(0))
        let enrolled = try await viaFirst.enroll()
        let key = try #require(viaFirst.nodeKey)
        #expect(enrolled.body == #"{"node_key":"\#(key)","node_invalid":false}"#)
        let viaSecond = try fleet.agent(fleet.baseURL(1), like: viaFirst)
        #expect(try await viaSecond.config().body == GatewayFleet.config)
        let logged = try await viaSecond.log("result", [resultItem("pack_scale_q", host: viaFirst.hostIdentifier, columns: ["id": "scale-direct"])])
        #expect(logged.body == "{}")
        #expect(try await viaSecond.distributedRead().body == #"{"queries":{}}"#)
        try await viaFirst.shutdown()
        try await viaSecond.shutdown()
    }

    /// A key both gateways have cached, revoked through gateway 0's admin API: refused there at
    /// once, and by gateway 1 within 10 s (the shared store's invalidation), served as before until then.
    static func aRevocationOnOneIsRefusedByTheOther(_ fleet: GatewayFleet) async throws {
        let onFirst = try fleet.agent(fleet.baseURL(0))
        try await onFirst.enroll()
        let onSecond = try fleet.agent(fleet.baseURL(1), like: onFirst)
        #expect(try await onFirst.config().body == GatewayFleet.config)
        #expect(try await onSecond.config().body == GatewayFleet.config)

        let revocation = try await fleet.revoke(onFirst.hostIdentifier, through: 0)
        #expect(revocation.status == 200, "\(revocation.body)")
        #expect(try await onFirst.config().body == revoked)
        let deadline = ContinuousClock.now + .seconds(10)
        var refused = false
        while !refused && ContinuousClock.now < deadline {
            let reply = try await onSecond.config()
            refused = reply.body == revoked
            if !refused {
                #expect(reply.body == GatewayFleet.config)
                try await Task.sleep(for: .milliseconds(200))
            }
        }
        #expect(refused, "gateway 1 still accepts a key revoked through gateway 0 after 10 s")
        try await onFirst.shutdown()
        try await onSecond.shutdown()
    }

    /// A carve campaign created on gateway 0, polled and answered through gateway 1; the carve
    /// started through gateway 1 and its blocks sent alternately through both (block 0 twice, once
    /// through each); complete, linked to its campaign, and downloadable whole from either gateway,
    /// though only one of them assembled the file.
    static func aCampaignAndACarveSpreadOverBoth(_ fleet: GatewayFleet) async throws {
        let viaFirst = try fleet.agent(fleet.baseURL(0))
        try await viaFirst.enroll()
        let viaSecond = try fleet.agent(fleet.baseURL(1), like: viaFirst)
        let host = viaFirst.hostIdentifier
        let path = "/etc/hosts"
        let sql = CarveRequestSQL.select(path: path)
        let created = try await fleet.adminObject(.POST, "/api/queries", json: ["sql": sql, "hosts": [host]], through: 0)
        let campaign = try #require((created["query"] as? [String: Any])?["id"] as? String, "\(created)")
        #expect(try await viaSecond.distributedRead().body == #"{"accelerate":60,"queries":{"\#(campaign)":"\#(sql)"}}"#)
        let upload = CarveUpload(payload: Array((0..<1000).map { UInt8(truncatingIfNeeded: $0 * 7) }), blockSize: 300)
        #expect(try await viaSecond.distributedWrite([campaign: [upload.scheduledRow(path: path)]]).body == "{}")

        let started = try await viaSecond.carveStart(upload)
        let session = try #require(started.json?["session_id"] as? String, "\(started.body)")
        #expect(started.body == #"{"session_id":"\#(session)"}"#)
        let agents = [viaFirst, viaSecond]
        #expect(try await viaSecond.carveBlock(0, of: upload, session: session).body == "{}")
        for index in upload.blocks.indices {
            #expect(try await agents[index % 2].carveBlock(index, of: upload, session: session).body == "{}")
        }

        func listed(through gateway: Int) async throws -> [String: Any]? {
            let all = try await fleet.adminObject(.GET, "/api/carves", through: gateway)
            return (all["carves"] as? [[String: Any]])?.first { $0["carve_guid"] as? String == upload.guid }
        }
        let deadline = ContinuousClock.now + .seconds(20)
        var carve = try await listed(through: 1)
        while carve?["status"] as? String != "complete" || carve?["campaign_id"] == nil, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(100))
            carve = try await listed(through: 1)
        }
        let complete = try #require(carve)
        #expect(complete["status"] as? String == "complete", "\(complete)")
        #expect(complete["campaign_id"] as? String == campaign)
        #expect(complete["blocks_received"] as? Int == upload.blocks.count)
        #expect(complete["sha256"] as? String == upload.sha256)
        let id = try #require(complete["id"] as? String)
        for gateway in 0..<2 {
            let download = try await fleet.admin(.GET, "/api/carves/\(id)/data", through: gateway)
            #expect(download.status == 200, "gateway \(gateway): \(String(decoding: download.bytes, as: UTF8.self))")
            #expect(download.bytes == upload.payload, "gateway \(gateway)")
            #expect(download.headers.first(name: "X-Carve-SHA256") == upload.sha256)
        }
        try await viaFirst.shutdown()
        try await viaSecond.shutdown()
    }

    /// What the agents saw while logging through HAProxy.
    struct Load: Sendable {
        var acknowledged: [String] = []
        var acknowledgedAfterKill = 0
        var nodeInvalid: [String] = []
    }

    /// Four agents enroll through HAProxy and log steadily; gateway 1 is SIGKILLed in the middle.
    /// Not one answer is `node_invalid`, the balancer moves the load to gateway 0, and once gateway
    /// 1 is back its spool delivers every line it acknowledged.
    static func oneGatewayKilledMidLoad(_ fleet: GatewayFleet, _ proxy: HAProxy) async throws {
        let agents = try (0..<4).map { _ in try fleet.agent(proxy.baseURL) }
        for agent in agents {
            // Round robin per connection: the enrollment and the config land on different gateways.
            let enrolled = try await agent.enroll()
            #expect(enrolled.body == #"{"node_key":"\#(agent.nodeKey ?? "")","node_invalid":false}"#, "\(proxy.output)")
            #expect(try await agent.config().body == GatewayFleet.config)
        }
        let start = ContinuousClock.now
        let killAt = start + .milliseconds(800)
        let load = try await withThrowingTaskGroup(of: Load.self) { group in
            for (a, agent) in agents.enumerated() {
                group.addTask {
                    var load = Load()
                    let key = agent.nodeKey
                    var batch = 0
                    while ContinuousClock.now < start + .milliseconds(2000) {
                        let ids = (0..<10).map { "scale-a\(a)-b\(batch)-\($0)" }
                        let items = ids.map { resultItem("pack_scale_q", host: agent.hostIdentifier, columns: ["id": $0]) }
                        // A request cut off by the kill is an error the agent retries later, never an answer.
                        if let reply = try? await agent.log("result", items) {
                            if reply.body == "{}" {
                                load.acknowledged += ids
                                if ContinuousClock.now > killAt + .milliseconds(200) { load.acknowledgedAfterKill += 1 }
                            }
                            if reply.outcome == .nodeInvalid { load.nodeInvalid.append("logger: \(reply.body)") }
                        }
                        if let reply = try? await agent.distributedRead(), reply.outcome == .nodeInvalid {
                            load.nodeInvalid.append("distributed read: \(reply.body)")
                        }
                        agent.nodeKey = key
                        batch += 1
                    }
                    return load
                }
            }
            group.addTask {
                try await Task.sleep(until: killAt, clock: .continuous)
                fleet.sigkill(1)
                return Load()
            }
            var all = Load()
            for try await part in group {
                all.acknowledged += part.acknowledged
                all.acknowledgedAfterKill += part.acknowledgedAfterKill
                all.nodeInvalid += part.nodeInvalid
            }
            return all
        }
        #expect(load.nodeInvalid.isEmpty, "\(load.nodeInvalid.prefix(5))")
        // Enough to mean something; how much depends on how loaded the machine is.
        #expect(load.acknowledged.count >= 20, "\(load.acknowledged.count)")
        #expect(load.acknowledgedAfterKill > 0, "HAProxy sends the load to the gateway left: \(proxy.output)")

        // Gateway 1 back on its spool: everything either gateway acknowledged reaches a file sink.
        try await fleet.start(1)
        let expected = Set(load.acknowledged + ["scale-direct"])
        var delivered = fleet.deliveredIDs()
        for _ in 0..<300 where !expected.isSubset(of: delivered) {
            try await Task.sleep(for: .milliseconds(100))
            delivered = fleet.deliveredIDs()
        }
        #expect(expected.subtracting(delivered).isEmpty, "\(expected.subtracting(delivered).count) acknowledged lines lost")
        // And every agent still works through either gateway without enrolling again.
        for agent in agents {
            #expect(try await agent.config().body == GatewayFleet.config)
            #expect(try await agent.distributedRead().body == #"{"queries":{}}"#)
            try await agent.shutdown()
        }
    }
}
