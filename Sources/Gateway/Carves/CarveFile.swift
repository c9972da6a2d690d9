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
        let decompressor: ZstdDecompressor? = try decompress ? ZstdDecompressor() : nil
        while true {
            let chunk: Data
            do {
                guard let read = try handle.read(upToCount: chunkSize), !read.isEmpty else { break }
                chunk = read
            } catch {
                throw ReadFailure(description: "cannot read \(path): \(error)")
            }
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
