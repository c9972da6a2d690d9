import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore

/// `GET /api/carves`, `GET /api/carves/{id}`, `GET /api/carves/{id}/data[?decompress=true]`
/// (docs/admin-api.md): the carves agents uploaded, and their files.
struct CarveRoutes: Sendable {
    let carves: CarveService

    /// The header a raw download carries its SHA-256 in, so a client can check what it received.
    static let sha256Header = HTTPField.Name("X-Carve-SHA256")!

    func register(on router: Router<AdminRequestContext>) {
        router.get("/api/carves") { _, _ -> Response in
            let all = try await self.stored { try await self.carves.store.carves() }
            return AdminResponse.object([("carves", .array(all.map(\.adminJSON)))])
        }
        router.get("/api/carves/:id") { _, context -> Response in
            let carve = try await self.find(try context.parameters.require("id"))
            return AdminResponse.object([("carve", carve.adminJSON)])
        }
        router.get("/api/carves/:id/data") { request, context -> Response in
            let carve = try await self.find(try context.parameters.require("id"))
            guard carve.state == .complete else {
                throw AdminError.conflict(
                    "carve \(carve.id) is \(carve.status) (\(carve.blocksReceived) of \(carve.blockCount) blocks); only a complete carve can be downloaded")
            }
            let decompress: Bool
            switch request.uri.queryParameters.get("decompress")?.lowercased() {
            case nil, "false", "0", "no": decompress = false
            case "true", "1", "yes": decompress = true
            case let other?: throw AdminError.badRequest("decompress must be true or false, not \(other)")
            }
            if decompress && !carve.compressed {
                throw AdminError.badRequest("carve \(carve.id) is not zstd-compressed; download it without decompress")
            }
            let path = self.carves.file(of: carve)
            // Behind a balancer the file is on the gateway that assembled it; the shared store
            // keeps the blocks for the others.
            let store = self.carves.store
            let local = FileManager.default.isReadableFile(atPath: path)
            guard local || store.keepsBlocksOfCompleteCarves else {
                throw AdminError.unavailable("the file of carve \(carve.id) is missing at \(path)")
            }
            var headers: HTTPFields = [.contentType: "application/octet-stream"]
            let name = carve.id + (carve.compressed ? (decompress ? ".tar" : ".tar.zst") : ".tar")
            headers[.contentDisposition] = "attachment; filename=\"\(name)\""
            if !decompress, let sha256 = carve.sha256 { headers[Self.sha256Header] = sha256 }
            let logger = context.logger
            let body = ResponseBody(contentLength: decompress ? nil : carve.size) { writer in
                do {
                    if local {
                        try await CarveFile.stream(path, decompress: decompress) { try await writer.write($0) }
                    } else {
                        try await CarveFile.stream(blocksOf: carve, in: store, decompress: decompress) { try await writer.write($0) }
                    }
                } catch let failure as CarveFile.ReadFailure {
                    // The status is already sent: the client sees a short body (and, decompressing, no
                    // final chunk), which `carves get` reports.
                    logger.error("carve download failed", metadata: ["gw.carve": "\(path)", "gw.error": "\(failure)"])
                    throw failure
                }
                try await writer.finish(nil)
            }
            return Response(status: .ok, headers: headers, body: body)
        }
    }

    /// The carve with this id.
    /// - Throws: `AdminError` 404 when there is none, 503 when the store fails.
    func find(_ id: String) async throws -> Carve {
        guard let carve = try await stored({ try await self.carves.store.carve(id: id) }) else {
            throw AdminError.notFound("no carve \(id)")
        }
        return carve
    }

    private func stored<T>(_ work: () async throws -> T) async throws -> T {
        do { return try await work() } catch let error as AdminError { throw error } catch {
            throw AdminError.unavailable("carve store unavailable: \(error)")
        }
    }
}

extension Carve {
    /// A carve as the admin API shows it: never its session id (a block credential).
    var adminJSON: JSONValue {
        .object(JSONObject([
            ("id", .string(id)),
            ("node_id", .string(nodeID)),
            ("host_identifier", .string(hostIdentifier)),
            ("campaign_id", .optional(campaignID)),
            ("path", .optional(path)),
            ("carve_guid", .string(carveGUID)),
            ("request_id", .string(requestID)),
            ("status", .string(status)),
            ("size", .int(size)),
            ("block_size", .int(blockSize)),
            ("block_count", .int(blockCount)),
            ("blocks_received", .int(state == .complete ? blockCount : blocksReceived)),
            ("started_at", .string(startedAt.adminText)),
            ("completed_at", .optional(completedAt?.adminText)),
            ("sha256", .optional(sha256)),
            ("compressed", .bool(compressed)),
            ("error", .optional(error)),
        ]))
    }
}
