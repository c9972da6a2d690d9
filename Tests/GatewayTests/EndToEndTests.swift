import Foundation
import NIOCore
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
                // Durable before the success body: the lines are in the file sink now, line for line.
                let lines = gateway.logLines("osqueryd.results.log")
                #expect(lines.count == 3)
                for (line, item) in zip(lines, results) {
                    let parsed = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
                    #expect((parsed["columns"] as? [String: String]) == (item["columns"] as? [String: String]))
                    #expect(parsed["name"] as? String == "pack_it_users")
            }

            agent.compressLogs = true
            let statuses = try await agent.log("status", [statusItem("started", host: agent.hostIdentifier), statusItem("careful", host: agent.hostIdentifier, severity: 1)])
            #expect(statuses.body == "{}")
            #expect(gateway.logLines("osqueryd.INFO").count == 1)
            #expect(gateway.logLines("osqueryd.WARNING").count == 1)

            let written = try await agent.distributedWrite(["q1": [["pid": "1", "name": "init"]]])
            #expect(written.body == "{}")
            let distributed = gateway.logLines("osqueryd.distributed.log")
            #expect(distributed.count == 1)
            let record = try #require(try JSONSerialization.jsonObject(with: Data(distributed[0].utf8)) as? [String: Any])
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
                #expect(gateway.logLines("osqueryd.snapshots.log").count == 1)
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

    @Test func theSameBatchSentTwiceIsAcceptedBothTimes() async throws {
        try await withGateway { gateway in
            try await gateway.withAgent { agent in
                try await agent.enroll()
                let items = [resultItem("q", host: agent.hostIdentifier, columns: ["a": "1"])]
                do {
                    let reply = try await agent.log("result", items)
                    #expect(reply.body == "{}")
                }
                do {
                    let reply = try await agent.log("result", items)
                    #expect(reply.body == "{}")
                }
                // Exact resends are written twice until the spool's resend window exists (issue #3).
                #expect(gateway.logLines("osqueryd.results.log").count == 2)
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
