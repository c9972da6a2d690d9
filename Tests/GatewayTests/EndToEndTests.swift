import Foundation
import NIOCore
import Sinks
import Testing
@testable import Gateway

/// An emulated osquery agent drives every endpoint of the real server over TLS.
@Suite struct EndToEndTests {
    @Test func agentEnrollsFetchesConfigLogsAndPolls() async throws {
        try await withGateway { gateway in
            try await gateway.withAgent { agent in
                let enrolled = try await agent.enroll()
                #expect(enrolled.status == 200)
                let key = try #require(agent.nodeKey)
                #expect(key.count == 64)
                #expect(enrolled.body == "{\"node_key\":\"\(key)\",\"node_invalid\":false}")

                let config = try await agent.config()
                #expect(config.outcome == .accepted)
                #expect(config.body == #"{"options":{"logger_tls_period":5},"schedule":{"uptime":{"interval":60,"query":"SELECT * FROM uptime;"}}}"#)

                let read = try await agent.distributedRead()
                #expect(read.body == #"{"queries":{}}"#)

                let results = (0..<3).map { resultItem("pack_it_users", host: agent.hostIdentifier, columns: ["uid": "\($0)"]) }
                let logged = try await agent.log("result", results)
                #expect(logged.body == "{}")
                // Durable before the success body: the records are in the spool now, byte for byte...
                let spooled = try gateway.spooledRecords().filter { $0.kind == .result }
                #expect(spooled.count == 3)
                #expect(spooled.map { $0.queryName } == ["pack_it_users", "pack_it_users", "pack_it_users"])
                // ...and the file sink has them, line for line, once its worker ran.
                let lines = await gateway.waitForLines("osqueryd.results.log", count: 3)
                #expect(lines.count == 3)
                for (line, item) in zip(lines, results) {
                    let parsed = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
                    #expect((parsed["columns"] as? [String: String]) == (item["columns"] as? [String: String]))
                    #expect(parsed["name"] as? String == "pack_it_users")
            }

            agent.compressLogs = true
            let statuses = try await agent.log("status", [statusItem("started", host: agent.hostIdentifier), statusItem("careful", host: agent.hostIdentifier, severity: 1)])
            #expect(statuses.body == "{}")
            #expect(await gateway.waitForLines("osqueryd.INFO", count: 1).count == 1)
            #expect(await gateway.waitForLines("osqueryd.WARNING", count: 1).count == 1)

            let written = try await agent.distributedWrite(["q1": [["pid": "1", "name": "init"]]])
            #expect(written.body == "{}")
            let distributed = await gateway.waitForLines("osqueryd.distributed.log", count: 1)
            #expect(distributed.count == 1)
            let first = try #require(distributed.first)
            let record = try #require(try JSONSerialization.jsonObject(with: Data(first.utf8)) as? [String: Any])
            #expect(record["name"] as? String == "q1")
            #expect(record["hostIdentifier"] as? String == agent.hostIdentifier)
            #expect((record["rows"] as? [[String: String]]) == [["pid": "1", "name": "init"]])
            #expect(record["status"] as? Int == 0)
            }
        }
    }

    @Test func snapshotsGoToTheirOwnFile() async throws {
        try await withGateway { gateway in
            try await gateway.withAgent { agent in
                try await agent.enroll()
                let snapshot: [String: Any] = ["name": "procs", "hostIdentifier": "h", "snapshot": [["pid": "1"]], "action": "snapshot", "counter": 0]
                let reply = try await agent.log("result", [snapshot])
                #expect(reply.body == "{}")
                #expect(await gateway.waitForLines("osqueryd.snapshots.log", count: 1).count == 1)
                #expect(gateway.logLines("osqueryd.results.log").isEmpty)
            }
        }
    }

    @Test func olderAgentsWithoutAuthorizationHeaderUseTheBodyKey() async throws {
        try await withGateway { gateway in
            try await gateway.withAgent { agent in
                agent.sendsAuthorizationHeader = false
                try await agent.enroll()
                do {
                    let reply = try await agent.distributedRead()
                    #expect(reply.body == #"{"queries":{}}"#)
                }
            }
        }
    }

    @Test func theSameBatchSentTwiceIsAcceptedBothTimesAndStoredOnce() async throws {
        try await withGateway { gateway in
            try await gateway.withAgent { agent in
                try await agent.enroll()
                // The same bytes twice, as osquery's transparent resend sends them.
                let items = [resultItem("q", host: agent.hostIdentifier, columns: ["a": "1"])]
                let body = try JSONSerialization.data(withJSONObject: ["node_key": agent.nodeKey!, "log_type": "result", "data": items])
                for _ in 0..<2 {
                    let reply = try await agent.post("/logger", body: ByteBuffer(bytes: body))
                    #expect(reply.body == "{}")
                }
                // osquery's transparent resend (docs/protocol.md#retries): acknowledged, stored once.
                #expect(try gateway.spooledRecords().filter { $0.kind == .result }.count == 1)
                #expect(await gateway.waitForLines("osqueryd.results.log", count: 1).count == 1)
            }
        }
    }

    @Test func emptyDataArrayIsAccepted() async throws {
        try await withGateway { gateway in
            try await gateway.withAgent { agent in
                try await agent.enroll()
                do {
                    let reply = try await agent.log("result", [])
                    #expect(reply.body == "{}")
                }
            }
        }
    }
}
