import Foundation
import NIOConcurrencyHelpers
import NIOHTTP1
import Support
import Testing
@testable import Gateway

/// An agent logging steadily in the background, noting how each batch was answered and whether
/// the database was up, down or back at the time.
final class LogLoad: @unchecked Sendable {
    enum Phase: Sendable { case before, down, after }

    struct Reply: Sendable {
        var ids: [String]
        var body: String
        var accepted: Bool
        var nodeInvalid: Bool
        var phase: Phase
    }

    private let state = NIOLockedValueBox((phase: Phase.before, stopped: false, replies: [Reply]()))
    private var task: Task<Void, Never>?

    var phase: Phase {
        get { state.withLockedValue { $0.phase } }
        set { state.withLockedValue { $0.phase = newValue } }
    }

    var replies: [Reply] { state.withLockedValue { $0.replies } }

    /// Starts sending batches of five result lines from `agent`, one every 20 ms.
    func start(_ agent: AgentEmulator) {
        task = Task {
            var batch = 0
            while !self.state.withLockedValue({ $0.stopped }) {
                let phase = self.phase
                let ids = (0..<5).map { "L-\(batch)-\($0)" }
                let items = ids.map { resultItem("pack_load_q", host: agent.hostIdentifier, columns: ["id": $0]) }
                let reply: Reply
                do {
                    let answer = try await agent.log("result", items)
                    reply = Reply(ids: ids, body: answer.body, accepted: answer.outcome == .accepted,
                                  nodeInvalid: answer.outcome == .nodeInvalid, phase: phase)
                } catch {
                    reply = Reply(ids: ids, body: "\(error)", accepted: false, nodeInvalid: false, phase: phase)
                }
                self.state.withLockedValue { $0.replies.append(reply) }
                batch += 1
                try? await Task.sleep(for: .milliseconds(20))
            }
        }
    }

    /// Stops sending and waits for the batch in flight.
    func stop() async {
        state.withLockedValue { $0.stopped = true }
        await task?.value
    }
}

/// The shared database stopped and started again under load (issue 12 item 4), on a PostgreSQL
/// server of the test's own: nodes in the cache keep working and their logs keep being
/// acknowledged, an unknown key gets an error body and never `node_invalid`, enrollment and
/// campaign creation answer errors, and everything comes back by itself.
@Suite(.enabled(if: PrivatePostgres.available, "needs PostgreSQL installed (initdb, pg_ctl)"))
struct PostgresOutageTests {
    static let unavailableBody = #"{"error":"node store unavailable"}"#

    @Test func theDatabaseStoppedMidLoadAndStartedAgain() async throws {
        try await withPrivatePostgres { server in
            var endpoint = server.endpoint
            endpoint.queryTimeout = .seconds(1)
            endpoint.connectTimeout = .seconds(1)
            let live = try LiveQueryGateway.sharing(endpoint)
            try await live.gateway.start()
            let load = LogLoad()
            let known = try live.agent("web-1"), newcomer = try live.agent("web-2"), stranger = try live.agent("web-3")
            func finish() async {
                await load.stop()
                for agent in [known, newcomer, stranger] { try? await agent.shutdown() }
                try? await live.gateway.stop()
                try? await live.shutdown()
            }
            do {
                #expect(await live.waitUntilListening())
                try await known.enroll()
                #expect(try await known.config().outcome == .accepted)
                // Never looked up before the outage, so nothing about it is cached.
                stranger.nodeKey = NodeKey.generate()
                load.start(try live.agent(like: known))
                try await Task.sleep(for: .milliseconds(300))

                try await server.stop()
                load.phase = .down
                // The cached node: config, an empty poll and logs, as if nothing happened.
                #expect(try await known.config().outcome == .accepted)
                #expect(try await known.distributedRead().body == #"{"queries":{}}"#)
                #expect(try await known.log("status", [statusItem("still here", host: "web-1")]).body == "{}")
                // What needs the database answers an error body, never node_invalid.
                let unknown = try await stranger.config()
                #expect(unknown.status == 503)
                #expect(unknown.body == Self.unavailableBody)
                let enrollment = try await newcomer.enroll()
                #expect(enrollment.status == 503)
                #expect(enrollment.body == Self.unavailableBody)
                let refused = try await live.call(.POST, "/api/queries", json: ["sql": "SELECT 1;", "all": true])
                #expect(refused.status == 503)
                #expect(refused.body.hasPrefix(#"{"error":"campaign store unavailable: "#))
                try await Task.sleep(for: .milliseconds(500))

                try await server.start()
                load.phase = .after
                // Recovery needs no one: the pool reconnects, the listener too (and starts over).
                let enrolled = try await firstValue(within: .seconds(30)) { () async throws -> Bool? in
                    (try await newcomer.enroll()).outcome == .accepted ? true : nil
                }
                #expect(enrolled == true)
                #expect(try await newcomer.config().outcome == .accepted)
                let key = stranger.nodeKey
                let definite = try await firstValue(within: .seconds(10)) { () async throws -> String? in
                    stranger.nodeKey = key
                    let reply = try await stranger.config()
                    return reply.outcome == .nodeInvalid ? reply.body : nil
                }
                #expect(definite == #"{"error":"unknown node key","node_invalid":true}"#)
                #expect(await live.waitUntilListening(resets: 2))
                // The campaign store's pool comes back too (its first tries may still meet the
                // 1 s query timeout on a loaded machine).
                let started = try await firstValue(within: .seconds(15)) { () async throws -> String? in
                    let id = try await live.start(["sql": "SELECT 1;", "all": true])
                    return id.isEmpty ? nil : id
                }
                let id = try #require(started)
                #expect(id.hasPrefix("gw-"))
                // A try the client gave up on may still have committed its own campaign: this one
                // is among the node's queries.
                let read = try await known.distributedRead().body
                #expect(read.hasPrefix(#"{"accelerate":60,"queries":{"#) && read.contains(#""\#(id)":"SELECT 1;""#), "\(read)")
                try await Task.sleep(for: .milliseconds(300))
                await load.stop()

                let replies = load.replies
                #expect(replies.filter(\.nodeInvalid).isEmpty, "node_invalid: \(replies.filter(\.nodeInvalid).map(\.body))")
                let duringOutage = replies.filter { $0.phase == .down }
                #expect(!duringOutage.isEmpty)
                let refusedWhileDown = duringOutage.filter { !$0.accepted }.map(\.body)
                #expect(refusedWhileDown.isEmpty, "refused while down: \(refusedWhileDown)")
                #expect(replies.contains { $0.phase == .after && $0.accepted })
                // Every acknowledged line reaches the sink (the spool is local; the database is no log pipe).
                let acknowledged = Set(replies.filter(\.accepted).flatMap(\.ids))
                var delivered = Set<String>()
                let file = live.gateway.logsDirectory + "/osqueryd.results.log"
                for _ in 0..<100 where !acknowledged.isSubset(of: delivered) {
                    let text = String(decoding: FileManager.default.contents(atPath: file) ?? Data(), as: UTF8.self)
                    delivered = Set(text.split(separator: "\n").compactMap { line in
                        line.range(of: #"L-\d+-\d+"#, options: .regularExpression).map { String(line[$0]) }
                    })
                    if !acknowledged.isSubset(of: delivered) { try await Task.sleep(for: .milliseconds(100)) }
                }
                #expect(acknowledged.subtracting(delivered).isEmpty, "lost \(acknowledged.subtracting(delivered).count) acknowledged lines")
            } catch {
                await finish()
                throw error
            }
            await finish()
        }
    }
}
