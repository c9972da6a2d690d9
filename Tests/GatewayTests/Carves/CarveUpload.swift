import AsyncHTTPClient
import Crypto
import Foundation
import NIOCore
import NIOHTTP1
import Support
import Testing
@testable import Gateway

/// One file as osquery's carver uploads it (docs/protocol.md#carving): its bytes cut into blocks of
/// `blockSize`, the last one shorter, under a `carve_guid` and a random `request_id`.
struct CarveUpload {
    var payload: [UInt8]
    var blockSize: Int
    var guid = UUID().uuidString.lowercased()
    var requestID = UUID().uuidString.lowercased()

    var blocks: [[UInt8]] {
        stride(from: 0, to: payload.count, by: blockSize).map { Array(payload[$0..<min($0 + blockSize, payload.count)]) }
    }

    var sha256: String { Hex.encode(SHA256.hash(data: payload)) }

    /// The row osquery's `carves` table returns for `SELECT * FROM carves WHERE path = ... AND carve = 1`
    /// when it schedules the carve.
    func scheduledRow(path: String) -> [String: String] {
        ["carve": "1", "carve_guid": guid, "path": path, "request_id": requestID, "sha256": "", "size": "-1",
         "status": "SCHEDULED", "time": "1772546706"]
    }
}

extension AgentEmulator {
    /// osquery's carve start: sizes as JSON integers, the key in the body (and the 5.23 header).
    func carveStart(_ upload: CarveUpload) async throws -> Reply {
        try await carveStart(blockCount: upload.blocks.count, blockSize: upload.blockSize, carveSize: upload.payload.count,
                             carveID: upload.guid, requestID: upload.requestID)
    }

    func carveStart(blockCount: Int, blockSize: Int, carveSize: Int, carveID: String, requestID: String) async throws -> Reply {
        try await post("/carve/start", json: [
            "block_count": blockCount, "block_size": blockSize, "carve_size": carveSize, "carve_id": carveID,
            "request_id": requestID, "node_key": nodeKey ?? "",
        ], authorized: true)
    }

    /// One carve block: no key in the body, `Authorization: NodeKey` as 5.23 sends it.
    func carveBlock(_ index: Int, of upload: CarveUpload, session: String, data: [UInt8]? = nil) async throws -> Reply {
        try await post("/carve/block", json: [
            "block_id": index, "session_id": session, "request_id": upload.requestID,
            "data": Data(data ?? upload.blocks[index]).base64EncodedString(),
        ], authorized: true)
    }
}

extension LiveQueryGateway {
    /// Starts a carve campaign for `path` on `agent`'s host and has the agent answer it with the row
    /// osquery returns; returns the campaign id.
    func requestCarve(_ upload: CarveUpload, path: String, by agent: AgentEmulator) async throws -> String {
        let id = try await start(["sql": CarveRequestSQL.select(path: path), "hosts": [agent.hostIdentifier], "name": "carve"])
        let read = try await agent.distributedRead()
        #expect(read.body == #"{"accelerate":60,"queries":{"\#(id)":"SELECT * FROM carves WHERE path = '\#(path)' AND carve = 1;"}}"#)
        #expect(try await agent.distributedWrite([id: [upload.scheduledRow(path: path)]]).body == "{}")
        return id
    }

    /// Starts the upload and returns the session id, checking the exact answer.
    func startCarve(_ upload: CarveUpload, by agent: AgentEmulator) async throws -> String {
        let reply = try await agent.carveStart(upload)
        let session = try #require(reply.json?["session_id"] as? String)
        #expect(reply.status == 200)
        #expect(reply.body == #"{"session_id":"\#(session)"}"#)
        #expect(session.count == 64 && session.allSatisfy(\.isHexDigit))
        return session
    }

    /// The carve with this `carve_guid`, as `GET /api/carves` lists it.
    func carve(guid: String) async throws -> [String: Any]? {
        let listed = try await object(.GET, "/api/carves")
        return (listed["carves"] as? [[String: Any]])?.first { $0["carve_guid"] as? String == guid }
    }

    /// Waits (assembly runs in the background) until the carve with this guid has `status`.
    func waitForCarve(guid: String, status: String, timeout: Duration = .seconds(10)) async throws -> [String: Any] {
        let deadline = ContinuousClock.now + timeout
        var carve = try await self.carve(guid: guid)
        while carve?["status"] as? String != status && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(50))
            carve = try await self.carve(guid: guid)
        }
        let found = try #require(carve)
        #expect(found["status"] as? String == status, "\(found)")
        return found
    }

    /// `GET /api/carves/{id}/data`: status, bytes and the SHA-256 header.
    func download(_ id: String, decompress: Bool = false) async throws -> (status: Int, bytes: [UInt8], sha256: String?) {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(adminPort)/api/carves/\(id)/data" + (decompress ? "?decompress=true" : ""))
        request.headers.add(name: "Authorization", value: "Bearer \(token)")
        let response = try await http.execute(request, timeout: .seconds(10))
        let body = try await response.body.collect(upTo: 64 << 20)
        return (Int(response.status.code), Array(body.readableBytesView), response.headers.first(name: "X-Carve-SHA256"))
    }

    /// The node id of the host `host`.
    func nodeID(_ host: String) async throws -> String {
        let nodes = try await object(.GET, "/api/nodes")
        let node = (nodes["nodes"] as? [[String: Any]])?.first { $0["host_identifier"] as? String == host }
        return try #require(node?["id"] as? String)
    }
}

/// `bytes` compressed by the `zstd` CLI at level 1, as osquery's `--carver_compression` does.
func zstdCompressed(_ bytes: [UInt8]) throws -> [UInt8] {
    let directory = makeTemporaryDirectory("zstd")
    let input = directory + "/carve.tar"
    let output = input + ".zst"
    try Data(bytes).write(to: URL(fileURLWithPath: input))
    let zstd = Process()
    zstd.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    zstd.arguments = ["zstd", "-q", "-1", "-f", input, "-o", output]
    try zstd.run()
    zstd.waitUntilExit()
    #expect(zstd.terminationStatus == 0)
    return Array(try Data(contentsOf: URL(fileURLWithPath: output)))
}
