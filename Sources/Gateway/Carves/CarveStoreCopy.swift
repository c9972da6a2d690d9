import Foundation

/// Copies every carve of one store into another (`osquery-gateway store copy`, issue 12 item 5), so
/// after a move to PostgreSQL any gateway can serve the carves made before it.
///
/// A complete carve's file (in the source's `carves.directory`) goes in as its blocks, which is how
/// the shared store keeps a complete carve; a carve still receiving takes the blocks it has; a
/// failed or expired one its record. Rerunning is safe: a carve the destination holds in the same
/// ended state is left alone, and one a stopped copy left half done, or one still receiving, is
/// brought up to date (blocks are stored once).
struct CarveStoreCopy: Sendable {
    /// Where the source's assembled files are.
    let directory: String

    struct Counts: Sendable, Equatable {
        var copied = 0
        /// Already in the destination, in the same state.
        var present = 0
        /// Complete carves whose file is gone from the source's folder (ids), left out.
        var missingFiles: [String] = []

        var summary: String {
            "carves: \(copied) copied, \(present) already there"
                + (missingFiles.isEmpty ? "" : ", \(missingFiles.count) left out (file missing: \(missingFiles.joined(separator: ", ")))")
        }
    }

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    func run(from source: any CarveStore, to destination: any CarveStore) async throws -> Counts {
        var counts = Counts()
        for carve in try await source.carves().reversed() {
            let existing = try await destination.carve(id: carve.id)
            // A carve still receiving is copied again: the old gateway may have taken more blocks.
            if let existing, existing.state == carve.state, carve.state != .receiving {
                counts.present += 1
                continue
            }
            let file = directory + "/" + carve.id
            if carve.state == .complete && !FileManager.default.isReadableFile(atPath: file) {
                counts.missingFiles.append(carve.id)
                continue
            }
            if existing == nil {
                var receiving = carve
                receiving.state = .receiving
                try await destination.create(receiving)
            }
            switch carve.state {
            case .complete:
                try await copyFile(file, of: carve, to: destination)
                try await destination.complete(
                    carve.id, sha256: carve.sha256 ?? "", compressed: carve.compressed, at: carve.completedAt ?? carve.startedAt)
            case .receiving:
                var next = 0
                while true {
                    let blocks = try await source.blocks(of: carve.id, from: next, limit: 64)
                    guard let last = blocks.last else { break }
                    for block in blocks { _ = try await destination.store(block: block.index, of: carve.id, data: block.data) }
                    next = last.index + 1
                }
            case .failed, .expired:
                try await destination.end(carve.id, as: carve.state, reason: carve.error ?? "", at: carve.completedAt ?? carve.startedAt)
            }
            if let campaignID = carve.campaignID { try await destination.link(carve.id, campaignID: campaignID, path: carve.path) }
            counts.copied += 1
        }
        return counts
    }

    /// Stores `file` as the carve's blocks, `blockSize` bytes each (the last one shorter).
    private func copyFile(_ file: String, of carve: Carve, to destination: any CarveStore) async throws {
        guard let handle = FileHandle(forReadingAtPath: file) else { throw Failure(description: "cannot open \(file)") }
        defer { try? handle.close() }
        for index in 0..<carve.blockCount {
            let data = try handle.read(upToCount: carve.expectedLength(ofBlock: index)) ?? Data()
            guard data.count == carve.expectedLength(ofBlock: index) else {
                throw Failure(description: "\(file) is shorter than the carve's \(carve.size) bytes")
            }
            _ = try await destination.store(block: index, of: carve.id, data: data)
        }
    }
}
