import Crypto
import Foundation
import Sinks
import Support

/// Turns a carve's stored blocks into its file: written in block order to `<id>.partial`, synced,
/// renamed to `<id>` and the folder synced, so a file named by a carve id is always whole.
///
/// The SHA-256 is computed from the bytes as they are written; osquery sends none to compare
/// with (it keeps its own in the agent's `carves` table, skipped above `--read_max`), so the
/// operator compares it there if needed, and `carves get` checks the download against it.
struct CarveAssembler {
    let store: any CarveStore
    let directory: String
    /// Blocks read from the store at once (8 KiB blocks by default: 512 KiB).
    var batch = 64

    struct Result: Sendable {
        var sha256: String
        var compressed: Bool
    }

    /// The blocks do not make the file the start announced: the carve cannot be completed.
    struct Mismatch: Error, CustomStringConvertible {
        var description: String
    }

    /// The file could not be written (disk full, permissions): worth another try later.
    struct WriteFailure: Error, CustomStringConvertible {
        var description: String
    }

    /// - Throws: `Mismatch` when a block is missing or of the wrong length or the sizes differ;
    ///   `WriteFailure` or a store error otherwise; `CancellationError` on shutdown (the partial
    ///   file is rewritten from the start next time).
    func assemble(_ carve: Carve) async throws -> Result {
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw WriteFailure(description: "cannot create \(directory): \(error)")
        }
        let target = directory + "/" + carve.id
        let partial = target + ".partial"
        guard FileManager.default.createFile(atPath: partial, contents: nil, attributes: [.posixPermissions: 0o600]),
            let handle = FileHandle(forWritingAtPath: partial)
        else { throw WriteFailure(description: "cannot create \(partial)") }
        var hasher = SHA256()
        var head: [UInt8] = []
        var written = 0
        var next = 0
        do {
            while next < carve.blockCount {
                guard ServiceLoop.keepRunning else { throw CancellationError() }
                let blocks = try await store.blocks(of: carve.id, from: next, limit: batch)
                guard !blocks.isEmpty else { throw Mismatch(description: "block \(next) is missing") }
                for block in blocks {
                    guard block.index == next else { throw Mismatch(description: "block \(next) is missing") }
                    let expected = carve.expectedLength(ofBlock: next)
                    guard block.data.count == expected else {
                        throw Mismatch(description: "block \(next) has \(block.data.count) bytes; expected \(expected)")
                    }
                    hasher.update(data: block.data)
                    if head.count < 4 { head += block.data.prefix(4 - head.count) }
                    do {
                        try handle.write(contentsOf: block.data)
                    } catch {
                        throw WriteFailure(description: "cannot write \(partial): \(error)")
                    }
                    written += block.data.count
                    next += 1
                }
            }
            do {
                try handle.synchronize()
                try handle.close()
            } catch {
                throw WriteFailure(description: "cannot sync \(partial): \(error)")
            }
        } catch {
            try? handle.close()
            unlink(partial)
            throw error
        }
        guard written == carve.size else {
            unlink(partial)
            throw Mismatch(description: "the blocks hold \(written) bytes; carve_size is \(carve.size)")
        }
        guard rename(partial, target) == 0 else {
            throw WriteFailure(description: "cannot rename \(partial): \(String(cString: strerror(errno)))")
        }
        let folder = open(directory, O_RDONLY | O_DIRECTORY)
        if folder >= 0 {
            _ = fsync(folder)
            _ = close(folder)
        }
        return Result(sha256: Hex.encode(hasher.finalize()), compressed: Zstd.isCompressed(prefix: head))
    }
}
