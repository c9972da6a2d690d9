import Foundation
import NIOCore
import Sinks
import Testing
@testable import Gateway

/// Live queries in front of a backend (issue 10 item 5): one distributed read carries the backend's
/// queries and the gateway's own campaigns' queries, and on distributed write each result goes back
/// to where its query came from: the backend's to the backend, the campaigns' to the local store.
/// Bodies are asserted exactly on both sides.
@Suite struct UpstreamCampaignTests {
    /// A distributed-write body with the ids in this order and no whitespace, so what the backend
    /// gets can be asserted byte for byte.
    static func writeBody(_ results: [(id: String, rows: String)], nodeKey: String) -> ByteBuffer {
        let queries = results.map { "\"\($0.id)\":\($0.rows)" }.joined(separator: ",")
        let statuses = results.map { "\"\($0.id)\":0" }.joined(separator: ",")
        let messages = results.map { "\"\($0.id)\":\"\"" }.joined(separator: ",")
        return ByteBuffer(string: "{\"queries\":{\(queries)},\"statuses\":{\(statuses)},\"messages\":{\(messages)},\"node_key\":\"\(nodeKey)\"}")
    }

    /// A file-sink line with its arrival time (`unixTime`) set to 0.
    static func withoutTime(_ line: String) -> String {
        line.replacingOccurrences(of: #""unixTime":[0-9]+"#, with: #""unixTime":0"#, options: .regularExpression)
    }

    @Test func oneReadCarriesBothAndEachResultGoesWhereItsQueryCameFrom() async throws {
        try await withBackend { backend in
            try await withLiveQueryGateway(configure: { try frontBackend(backend, with: $0) }) { live in
                let agent = try live.agent("web-1")
                try await agent.enroll()
                let key = try #require(agent.nodeKey)
                let id = try await live.start(["sql": "SELECT 1 AS one;", "all": true, "name": "probe"])

                // One answer: the backend's query and the campaign's, accelerate the larger of both.
                let read = try await agent.distributedRead()
                #expect(read.body == #"{"accelerate":60,"queries":{"backend_q1":"SELECT * FROM osquery_info;","\#(id)":"SELECT 1 AS one;"}}"#)
                #expect(backend.received(TestBackend.paths.distributedRead).map(\.body) == [#"{"node_key":"backend-key-1"}"#])
                #expect(try await live.states(id) == ["web-1": "sent"])

                // The write: the backend gets a body with its own query's result only, with its key;
                // the campaign's answer is stored here; the agent gets the backend's answer.
                let body = Self.writeBody([("backend_q1", #"[{"version":"5.23.1"}]"#), (id, #"[{"one":"1"}]"#)], nodeKey: key)
                let written = try await agent.post("/distributed/write", body: body)
                #expect(written.body == "{}")
                #expect(backend.received(TestBackend.paths.distributedWrite).map(\.body) == [
                    #"{"queries":{"backend_q1":[{"version":"5.23.1"}]},"statuses":{"backend_q1":0},"messages":{"backend_q1":""},"node_key":"backend-key-1"}"#,
                ])
                #expect(try await live.states(id) == ["web-1": "answered"])
                let answers = try await SQLiteCampaignStore(path: live.gateway.configuration.campaigns.path).answers(of: id)
                #expect(answers.map(\.rows) == [#"[{"one":"1"}]"#])

                // The local sinks get both; neither is for the upstream sink to send again.
                let lines = await live.gateway.waitForLines("osqueryd.distributed.log", count: 2)
                #expect(lines.map(Self.withoutTime) == [
                    #"{"name":"backend_q1","hostIdentifier":"web-1","unixTime":0,"status":0,"message":"","stats":{},"rows":[{"version":"5.23.1"}]}"#,
                    #"{"name":"\#(id)","hostIdentifier":"web-1","unixTime":0,"status":0,"message":"","stats":{},"rows":[{"one":"1"}]}"#,
                ])
                let records = try live.gateway.spooledRecords().filter { $0.kind == .distributed }
                #expect(records.map { "\($0.queryName ?? "-") passed through: \($0.passedThrough)" } == [
                    "backend_q1 passed through: true", "probe passed through: true",
                ])
                // The upstream sink delivers in spool order: once it has posted a later log batch,
                // it has passed the write without sending anything from it.
                #expect(try await agent.log("status", [statusItem("after the write", host: "web-1")]).body == "{}")
                #expect(await backend.waitFor(TestBackend.paths.logger, count: 1).count == 1)
                #expect(backend.received(TestBackend.paths.distributedWrite).count == 1)
                try await agent.shutdown()
            }
        }
    }

    @Test func aBackendErrorAnswerDoesNotSwallowTheCampaignsQueries() async throws {
        try await withBackend { backend in
            try await withLiveQueryGateway(configure: { try frontBackend(backend, with: $0) }) { live in
                let agent = try live.agent("web-1")
                try await agent.enroll()
                backend.update { $0.failure = .errorBody }
                // No campaign work: the backend's answer, unchanged.
                #expect(try await agent.distributedRead().body == TestBackend.errorBody)
                // Campaign work: osquery would drop an answer with an error member whole, and the
                // campaign's query with it, so the node gets the campaign's queries alone.
                let id = try await live.start(["sql": "SELECT 2;", "all": true])
                #expect(try await agent.distributedRead().body == #"{"accelerate":60,"queries":{"\#(id)":"SELECT 2;"}}"#)
                #expect(try await live.states(id) == ["web-1": "sent"])
                try await agent.shutdown()
            }
        }
    }

    @Test func withTheBackendDownCampaignsStillRunAndTheBackendsResultsArriveLater() async throws {
        try await withBackend { backend in
            try await withLiveQueryGateway(configure: { try frontBackend(backend, with: $0) }) { live in
                let agent = try live.agent("web-1")
                try await agent.enroll()
                let key = try #require(agent.nodeKey)
                let id = try await live.start(["sql": "SELECT 3;", "all": true])
                await backend.stop()

                #expect(try await agent.distributedRead().body == #"{"accelerate":60,"queries":{"\#(id)":"SELECT 3;"}}"#)
                let body = Self.writeBody([("backend_q1", #"[{"version":"5.23.2"}]"#), (id, #"[{"n":"3"}]"#)], nodeKey: key)
                #expect(try await agent.post("/distributed/write", body: body).body == "{}")
                #expect(try await live.states(id) == ["web-1": "answered"])
                #expect(await live.gateway.waitForLines("osqueryd.distributed.log", count: 2).count == 2)

                // Back up: the upstream sink delivers the backend's result, and only that one.
                try await backend.start()
                let writes = await backend.waitFor(TestBackend.paths.distributedWrite, count: 1, timeout: .seconds(40))
                let backendsOwn = #"{"queries":{"backend_q1":[{"version":"5.23.2"}]},"statuses":{"backend_q1":0},"messages":{"backend_q1":""},"stats":{"backend_q1":{}},"node_key":"backend-key-1"}"#
                #expect(writes.map(\.body) == [backendsOwn])
                #expect(try await agent.log("status", [statusItem("after the outage", host: "web-1")]).body == "{}")
                #expect(await backend.waitFor(TestBackend.paths.logger, count: 1, timeout: .seconds(40)).count == 1)
                // Delivery is at least once (a slow answer on a loaded machine is sent again), but
                // whatever arrived is the backend's result and never the campaign's.
                #expect(Set(backend.received(TestBackend.paths.distributedWrite).map(\.body)) == [backendsOwn])
                try await agent.shutdown()
            }
        }
    }
}
