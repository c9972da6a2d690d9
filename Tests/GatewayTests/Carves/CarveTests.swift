import Foundation
import NIOCore
import NIOHTTP1
import Testing
@testable import Gateway

/// File carving end to end (issue 11 item 4): real TLS agents sending osquery's carve start and
/// block bodies, the campaign that asks for the carve, the admin API that lists and downloads it.
@Suite struct CarveTests {
    /// Ten bytes in blocks of 4: 4 + 4 + 2, so the last block is short as osquery's is.
    static let payload = Array("0123456789".utf8)

    @Test func aCarveInOrderIsAssembledCheckedAndLinkedToItsCampaign() async throws {
        try await withLiveQueryGateway { live in
            let agent = try live.agent("web-1")
            try await agent.enroll()
            let upload = CarveUpload(payload: Self.payload, blockSize: 4)
            let campaign = try await live.requestCarve(upload, path: "/etc/hosts", by: agent)
            let session = try await live.startCarve(upload, by: agent)

            // Blocks that cannot be part of this carve store nothing.
            let short = try await agent.carveBlock(0, of: upload, session: session, data: [1, 2, 3])
            #expect(short.status == 400)
            #expect(short.body == #"{"error":"block 0 has 3 bytes; expected 4"}"#)
            let beyond = try await agent.carveBlock(3, of: upload, session: session, data: [1, 2])
            #expect(beyond.status == 400)
            #expect(beyond.body == #"{"error":"block_id 3 is out of range for a carve of 3 blocks"}"#)
            let unknown = try await agent.carveBlock(0, of: upload, session: String(repeating: "0", count: 64))
            #expect(unknown.status == 404)
            #expect(unknown.body == #"{"error":"no carve session with this session_id"}"#)

            #expect(try await agent.carveBlock(0, of: upload, session: session).body == "{}")
            let receiving = try #require(try await live.carve(guid: upload.guid))
            #expect(receiving["status"] as? String == "receiving")
            #expect(receiving["blocks_received"] as? Int == 1)
            for index in 1..<3 {
                let reply = try await agent.carveBlock(index, of: upload, session: session)
                #expect(reply.status == 200)
                #expect(reply.body == "{}")
            }

            let carve = try await live.waitForCarve(guid: upload.guid, status: "complete")
            let id = try #require(carve["id"] as? String)
            let startedAt = try #require(carve["started_at"] as? String)
            let completedAt = try #require(carve["completed_at"] as? String)
            let nodeID = try await live.nodeID("web-1")
            let shown = try await live.call(.GET, "/api/carves/\(id)")
            #expect(shown.status == 200)
            #expect(shown.body == """
                {"carve":{"block_count":3,"block_size":4,"blocks_received":3,"campaign_id":"\(campaign)",\
                "carve_guid":"\(upload.guid)","completed_at":"\(completedAt)","compressed":false,"error":null,\
                "host_identifier":"web-1","id":"\(id)","node_id":"\(nodeID)","path":"/etc/hosts",\
                "request_id":"\(upload.requestID)","sha256":"\(upload.sha256)","size":10,"started_at":"\(startedAt)",\
                "status":"complete"}}
                """)

            let file = try await live.download(id)
            #expect(file.status == 200)
            #expect(file.bytes == Self.payload)
            #expect(file.sha256 == upload.sha256)
            #expect(try Data(contentsOf: URL(fileURLWithPath: live.gateway.configuration.carves.directory + "/" + id)) == Data(Self.payload))
            let plain = try await live.call(.GET, "/api/carves/\(id)/data?decompress=true")
            #expect(plain.status == 400)
            #expect(plain.body == #"{"error":"carve \#(id) is not zstd-compressed; download it without decompress"}"#)
            try await agent.shutdown()
        }
    }

    @Test func blocksOutOfOrderMakeTheSameFile() async throws {
        try await withLiveQueryGateway { live in
            let agent = try live.agent("web-1")
            try await agent.enroll()
            let upload = CarveUpload(payload: Self.payload, blockSize: 4)
            _ = try await live.requestCarve(upload, path: "/etc/hosts", by: agent)
            let session = try await live.startCarve(upload, by: agent)
            for index in [2, 0, 1] {
                #expect(try await agent.carveBlock(index, of: upload, session: session).body == "{}")
            }
            let carve = try await live.waitForCarve(guid: upload.guid, status: "complete")
            #expect(carve["sha256"] as? String == upload.sha256)
            let file = try await live.download(try #require(carve["id"] as? String))
            #expect(file.bytes == Self.payload)
            try await agent.shutdown()
        }
    }

    @Test func aDuplicatedBlockOrStartIsStoredOnce() async throws {
        try await withLiveQueryGateway { live in
            let agent = try live.agent("web-1")
            try await agent.enroll()
            let upload = CarveUpload(payload: Self.payload, blockSize: 4)
            _ = try await live.requestCarve(upload, path: "/etc/hosts", by: agent)
            let session = try await live.startCarve(upload, by: agent)
            // osquery 5.22.1+ sends a start or a block again when its answer was lost.
            #expect(try await live.startCarve(upload, by: agent) == session)
            #expect(try await agent.carveBlock(0, of: upload, session: session).body == "{}")
            #expect(try await agent.carveBlock(0, of: upload, session: session).body == "{}")
            #expect(try await live.carve(guid: upload.guid)?["blocks_received"] as? Int == 1)
            #expect(try await agent.carveBlock(1, of: upload, session: session).body == "{}")
            #expect(try await agent.carveBlock(2, of: upload, session: session).body == "{}")
            let carve = try await live.waitForCarve(guid: upload.guid, status: "complete")
            // The last block again, after assembly: still accepted, nothing changes.
            #expect(try await agent.carveBlock(2, of: upload, session: session).body == "{}")
            let listed = try await live.object(.GET, "/api/carves")
            #expect((listed["carves"] as? [[String: Any]])?.count == 1)
            let file = try await live.download(try #require(carve["id"] as? String))
            #expect(file.bytes == Self.payload)
            try await agent.shutdown()
        }
    }

    @Test func aBlockWithAnotherNodesKeyIsRefusedAndStoresNothing() async throws {
        try await withLiveQueryGateway { live in
            let owner = try live.agent("web-1"), intruder = try live.agent("db-1")
            try await owner.enroll()
            try await intruder.enroll()
            let upload = CarveUpload(payload: Self.payload, blockSize: 4)
            _ = try await live.requestCarve(upload, path: "/etc/hosts", by: owner)
            let session = try await live.startCarve(upload, by: owner)
            let refused = try await intruder.carveBlock(0, of: upload, session: session, data: Array("XXXX".utf8))
            #expect(refused.status == 403)
            #expect(refused.body == #"{"error":"this carve session belongs to another node"}"#)
            #expect(refused.outcome == .failed)
            #expect(try await live.carve(guid: upload.guid)?["blocks_received"] as? Int == 0)
            for index in 0..<3 {
                #expect(try await owner.carveBlock(index, of: upload, session: session).body == "{}")
            }
            let carve = try await live.waitForCarve(guid: upload.guid, status: "complete")
            #expect(try await live.download(try #require(carve["id"] as? String)).bytes == Self.payload)
            for agent in [owner, intruder] { try await agent.shutdown() }
        }
    }

    @Test func aZstdCarveIsDetectedAndDownloadsDecompressed() async throws {
        try await withLiveQueryGateway { live in
            let agent = try live.agent("web-1")
            try await agent.enroll()
            let tar = Array(String(repeating: "etc/hosts\0127.0.0.1 localhost\n", count: 400).utf8)
            let compressed = try zstdCompressed(tar)
            #expect(Array(compressed.prefix(4)) == [0x28, 0xB5, 0x2F, 0xFD])
            let upload = CarveUpload(payload: compressed, blockSize: 16)
            _ = try await live.requestCarve(upload, path: "/etc/hosts", by: agent)
            let session = try await live.startCarve(upload, by: agent)
            for index in upload.blocks.indices {
                #expect(try await agent.carveBlock(index, of: upload, session: session).body == "{}")
            }
            let carve = try await live.waitForCarve(guid: upload.guid, status: "complete")
            #expect(carve["compressed"] as? Bool == true)
            let id = try #require(carve["id"] as? String)
            let raw = try await live.download(id)
            #expect(raw.bytes == compressed)
            #expect(raw.sha256 == upload.sha256)
            let unpacked = try await live.download(id, decompress: true)
            #expect(unpacked.status == 200)
            #expect(unpacked.bytes == tar)
            #expect(unpacked.sha256 == nil)
            try await agent.shutdown()
        }
    }

    @Test func limitsAreAnsweredWithErrorBodies() async throws {
        try await withLiveQueryGateway(configure: { gateway in
            gateway.configuration.carves.maxSize = 100
            gateway.configuration.carves.maxBlockSize = 64
            gateway.configuration.carves.maxOpenSessions = 1
            gateway.configuration.carves.maxSessionAge = .seconds(1)
        }) { live in
            let agent = try live.agent("web-1")
            try await agent.enroll()
            let tooLarge = try await agent.carveStart(blockCount: 3, blockSize: 50, carveSize: 101, carveID: "big", requestID: "r1")
            #expect(tooLarge.status == 413)
            #expect(tooLarge.body == #"{"error":"carve_size 101 is larger than carves.max_size (100 bytes)"}"#)
            let wideBlocks = try await agent.carveStart(blockCount: 1, blockSize: 65, carveSize: 65, carveID: "wide", requestID: "r2")
            #expect(wideBlocks.status == 413)
            #expect(wideBlocks.body == #"{"error":"block_size 65 is larger than carves.max_block_size (64 bytes)"}"#)
            let miscounted = try await agent.carveStart(blockCount: 3, blockSize: 50, carveSize: 100, carveID: "odd", requestID: "r3")
            #expect(miscounted.status == 400)
            #expect(miscounted.body == #"{"error":"block_count 3 does not match carve_size 100 in blocks of 50 bytes (2)"}"#)
            // A size sent as a string is a type error, named with the byte where it is.
            let key = agent.nodeKey ?? ""
            let untyped = try await agent.post("/carve/start", body: ByteBuffer(
                string: #"{"block_count":"2","block_size":50,"carve_size":100,"carve_id":"s","request_id":"r","node_key":"\#(key)"}"#))
            #expect(untyped.status == 400)
            #expect(untyped.body == #"{"error":"invalid carve start body: block_count must be a non-negative integer (at byte 15)"}"#)

            let first = CarveUpload(payload: Array(repeating: 7, count: 100), blockSize: 50)
            let session = try await live.startCarve(first, by: agent)
            let second = CarveUpload(payload: Array(repeating: 8, count: 10), blockSize: 50)
            let crowded = try await agent.carveStart(second)
            #expect(crowded.status == 503)
            #expect(crowded.body == #"{"error":"too many carves in progress (carves.max_open_sessions is 1); carve again later"}"#)

            try await Task.sleep(for: .milliseconds(1_500))
            let late = try await agent.carveBlock(0, of: first, session: session)
            #expect(late.status == 410)
            #expect(late.body == #"{"error":"carve session expired (carves.max_session_age is 1s)"}"#)
            let expired = try await live.carve(guid: first.guid)
            #expect(expired?["status"] as? String == "expired")
            #expect(expired?["error"] as? String == "carve session expired (carves.max_session_age is 1s)")
            // The expired session no longer counts as open.
            _ = try await live.startCarve(second, by: agent)
            try await agent.shutdown()
        }
    }

    @Test func aCarveSurvivesAGatewayRestartMidWay() async throws {
        let live = try LiveQueryGateway()
        try await live.gateway.start()
        let agent = try live.agent("web-1")
        try await agent.enroll()
        let key = agent.nodeKey
        let upload = CarveUpload(payload: Self.payload, blockSize: 4)
        let campaign = try await live.requestCarve(upload, path: "/etc/hosts", by: agent)
        let session = try await live.startCarve(upload, by: agent)
        #expect(try await agent.carveBlock(0, of: upload, session: session).body == "{}")
        #expect(try await agent.carveBlock(1, of: upload, session: session).body == "{}")
        try await agent.shutdown()
        try await live.gateway.stop()

        try await live.gateway.start()
        let again = try live.agent("web-1")
        again.nodeKey = key
        // The block whose answer was lost in the restart comes again, then the last one.
        #expect(try await again.carveBlock(1, of: upload, session: session).body == "{}")
        #expect(try await again.carveBlock(2, of: upload, session: session).body == "{}")
        let carve = try await live.waitForCarve(guid: upload.guid, status: "complete")
        #expect(carve["campaign_id"] as? String == campaign)
        #expect(carve["sha256"] as? String == upload.sha256)
        #expect(try await live.download(try #require(carve["id"] as? String)).bytes == Self.payload)
        try await again.shutdown()
        try await live.gateway.stop()
        try await live.shutdown()
    }

    @Test func theCarveSQLQuotesThePath() {
        #expect(CarveRequestSQL.select(path: "/tmp/it's here") == "SELECT * FROM carves WHERE path = '/tmp/it''s here' AND carve = 1;")
        #expect(CarveRequestSQL.select(path: "/x' OR '1'='1") == "SELECT * FROM carves WHERE path = '/x'' OR ''1''=''1' AND carve = 1;")
    }
}

/// `osquery-gateway carve` and `carves` against a running gateway, through the real binary.
@Suite(.enabled(if: gatewayBinaryBuilt, "needs the built binary"))
struct CarveCLITests {
    @Test func carveSchedulesAndCarvesListsAndDownloads() async throws {
        try await withLiveQueryGateway { live in
            let agent = try live.agent("web-1")
            try await agent.enroll()
            let config = live.gateway.directory + "/cli.yaml"
            try Data("""
                listen: 127.0.0.1:0
                tls: { certificate: tls/server.pem, private_key: tls/server.key }
                enrollment: { secrets: [{ name: default, file: secret.txt }] }
                admin: { listen: 127.0.0.1:\(live.adminPort), token_file: admin_token.txt }
                """.utf8).write(to: URL(fileURLWithPath: config))
            let path = "/tmp/it's here.txt"
            let upload = CarveUpload(payload: CarveTests.payload, blockSize: 4)
            let run = Task { try await GatewayRun.run(["carve", path, "--host", "web-1", "--wait", "15s", "--config", config]) }
            var queries: [String: String] = [:]
            for _ in 0..<100 where queries.isEmpty {
                try await Task.sleep(for: .milliseconds(100))
                queries = (try await agent.distributedRead().json?["queries"] as? [String: String]) ?? [:]
            }
            let (campaign, sql) = try #require(queries.first)
            #expect(sql == "SELECT * FROM carves WHERE path = '/tmp/it''s here.txt' AND carve = 1;")
            #expect(try await agent.distributedWrite([campaign: [upload.scheduledRow(path: path)]]).body == "{}")
            let scheduled = try await run.value
            #expect(scheduled.status == 0, "\(scheduled.errors)")
            #expect(scheduled.output == """
                campaign \(campaign): carving \(path)
                web-1: carve \(upload.guid) scheduled; the upload starts within a minute

                """)

            let session = try await live.startCarve(upload, by: agent)
            for index in 0..<3 { #expect(try await agent.carveBlock(index, of: upload, session: session).body == "{}") }
            let carve = try await live.waitForCarve(guid: upload.guid, status: "complete")
            let id = try #require(carve["id"] as? String)

            let json = try await GatewayRun.run(["carves", "--format", "json", "--config", config])
            #expect(json.status == 0, "\(json.errors)")
            let listed = try await live.call(.GET, "/api/carves").body
            #expect(json.output == String(listed.dropFirst(#"{"carves":["#.count).dropLast(2)) + "\n")

            let table = try await GatewayRun.run(["carves", "--config", config])
            #expect(table.status == 0, "\(table.errors)")
            let cells = [id, "web-1", path, "complete", "10", upload.sha256]
            let header = ["id", "host", "path", "status", "size", "sha256"]
            let widths = zip(header, cells).map { max($0.count, $1.count) }
            func line(_ row: [String]) -> String {
                row.enumerated().map { i, cell in i == row.count - 1 ? cell : cell.padding(toLength: widths[i], withPad: " ", startingAt: 0) }
                    .joined(separator: "  ")
            }
            #expect(table.output == line(header) + "\n" + line(cells) + "\n")

            let file = live.gateway.directory + "/downloaded.tar"
            let got = try await GatewayRun.run(["carves", "get", id, "--output", file, "--config", config])
            #expect(got.status == 0, "\(got.errors)")
            #expect(got.output == "\(file): 10 bytes, sha256 \(upload.sha256)\n")
            #expect(try Data(contentsOf: URL(fileURLWithPath: file)) == Data(CarveTests.payload))
            let missing = try await GatewayRun.run(["carves", "get", "nope", "--output", file, "--config", config])
            #expect(missing.status == 1)
            #expect(missing.errors == "admin API: no carve nope\n")
            try await agent.shutdown()
        }
    }
}
