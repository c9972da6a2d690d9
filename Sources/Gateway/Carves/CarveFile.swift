import Foundation
import NIOCore
import Sinks

/// Reads an assembled carve back for a download, as it is or zstd-decompressed, in pieces, so
/// neither a 2 GiB carve nor a small upload that decompresses to far more sits in memory whole.
enum CarveFile {
    /// The file cannot be read, or its zstd data is corrupt or truncated.
    struct ReadFailure: Error, CustomStringConvertible {
        var description: String
    }

    /// Bytes read from the file at once.
    static let chunkSize = 1 << 20

    /// Calls `write` with the file's bytes (decompressed when `decompress` is set), in order.
    /// - Throws: `ReadFailure`, or what `write` throws (the client went away).
    static func stream(_ path: String, decompress: Bool, to write: (ByteBuffer) async throws -> Void) async throws {
        guard let handle = FileHandle(forReadingAtPath: path) else { throw ReadFailure(description: "cannot open \(path)") }
        defer { try? handle.close() }
        try await pump(decompress: decompress, to: write) {
            do {
                guard let read = try handle.read(upToCount: chunkSize), !read.isEmpty else { return nil }
                return read
            } catch {
                throw ReadFailure(description: "cannot read \(path): \(error)")
            }
        }
    }

    /// The same from the blocks a shared store keeps of a complete carve, on a gateway that did not
    /// assemble it; the bytes are checked against the carve's recorded size.
    static func stream(blocksOf carve: Carve, in store: any CarveStore, decompress: Bool, to write: (ByteBuffer) async throws -> Void) async throws {
        var next = 0
        var pending: [Data] = []
        var total = 0
        try await pump(decompress: decompress, to: write) {
            if pending.isEmpty {
                guard next < carve.blockCount else {
                    guard total == carve.size else { throw ReadFailure(description: "the stored blocks hold \(total) bytes; carve_size is \(carve.size)") }
                    return nil
                }
                let blocks: [(index: Int, data: Data)]
                do {
                    blocks = try await store.blocks(of: carve.id, from: next, limit: max(1, chunkSize / max(carve.blockSize, 1)))
                } catch {
                    throw ReadFailure(description: "cannot read the blocks of carve \(carve.id): \(error)")
                }
                for block in blocks {
                    guard block.index == next else { throw ReadFailure(description: "block \(next) of carve \(carve.id) is missing") }
                    pending.append(block.data)
                    next += 1
                }
                guard !pending.isEmpty else { throw ReadFailure(description: "block \(next) of carve \(carve.id) is missing") }
            }
            let data = pending.removeFirst()
            total += data.count
            return data
        }
    }

    /// Feeds `read`'s chunks (nil at the end) to `write`, through a zstd decompressor when asked.
    private static func pump(decompress: Bool, to write: (ByteBuffer) async throws -> Void, read: () async throws -> Data?) async throws {
        let decompressor: ZstdDecompressor? = try decompress ? ZstdDecompressor() : nil
        while let chunk = try await read() {
            guard let decompressor else {
                try await write(ByteBuffer(bytes: chunk))
                continue
            }
            decompressor.feed(chunk)
            while true {
                let piece: [UInt8]?
                do {
                    piece = try decompressor.next()
                } catch {
                    throw ReadFailure(description: "\(error)")
                }
                guard let piece else { break }
                if !piece.isEmpty { try await write(ByteBuffer(bytes: piece)) }
            }
        }
        do {
            try decompressor?.finish()
        } catch {
            throw ReadFailure(description: "\(error)")
        }
    }
}
