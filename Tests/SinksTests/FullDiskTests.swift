import Foundation
import NIOCore
import Testing
@testable import Sinks

/// A small tmpfs, so writes fail with a real ENOSPC. Mounting needs root (CI and the development
/// machines run as root); elsewhere these tests are skipped.
final class SmallFileSystem {
    let path: String

    init?(kilobytes: Int) {
        path = temporaryDirectory("tmpfs")
        guard getuid() == 0, (try? run(["mount", "-t", "tmpfs", "-o", "size=\(kilobytes)k", "tmpfs", path]))?.status == 0 else { return nil }
    }

    deinit { _ = try? run(["umount", "-l", path]) }
}

let canMountTmpfs: Bool = SmallFileSystem(kilobytes: 64) != nil

@Suite(.enabled(if: canMountTmpfs, "needs root to mount a small tmpfs"))
struct FullDiskTests {
    /// The probe found a torn line plus the whole batch again after it; now a failed batch leaves
    /// every file as it was, and the retry after space returns writes each line once, in order.
    @Test func fileSinkRollsBackAPartialBatchOnENOSPC() async throws {
        let disk = try #require(SmallFileSystem(kilobytes: 64))
        let directory = disk.path + "/logs"
        let sink = try FileSink(configuration: .init(name: "files", directory: directory))
        let line = String(repeating: "x", count: 900)
        func batch(_ range: Range<Int>) -> [LogRecord] {
            range.map { LogRecord(kind: .result, nodeID: "n", hostIdentifier: "h", json: ByteBuffer(string: "{\"id\":\($0),\"pad\":\"\(line)\"}")) }
        }
        try await sink.write(batch(0..<20))
        // Fill the rest of the file system, then a batch that cannot fit.
        let filler = disk.path + "/filler"
        let free = try #require(try? run(["sh", "-c", "dd if=/dev/zero of=\(filler) bs=1k count=1000 2>/dev/null; true"]))
        _ = free
        await #expect(throws: SinkError.self) { try await sink.write(batch(20..<60)) }
        let afterFailure = try String(contentsOfFile: directory + "/osqueryd.results.log", encoding: .utf8)
        #expect(afterFailure.split(separator: "\n").count == 20)
        #expect(afterFailure.hasSuffix("}\n"), "no torn line is left behind")

        try FileManager.default.removeItem(atPath: filler)
        try await sink.write(batch(20..<60))
        let lines = try String(contentsOfFile: directory + "/osqueryd.results.log", encoding: .utf8).split(separator: "\n")
        let ids = lines.map { Int($0.dropFirst(6).prefix { $0 != "," })! }
        #expect(ids == Array(0..<60))
        await sink.close()
    }

    /// The spool on a full disk refuses the batch (the agent keeps it) and takes it once there is room.
    @Test func spoolRefusesOnENOSPCAndRecovers() async throws {
        let disk = try #require(SmallFileSystem(kilobytes: 128))
        let spool = try Spool(configuration: .init(directory: disk.path + "/spool", commitWindow: .zero), sinks: ["a"])
        let filler = disk.path + "/filler"
        _ = try run(["sh", "-c", "dd if=/dev/zero of=\(filler) bs=1k count=1000 2>/dev/null; true"])
        await #expect(throws: SinkError.self) { try await spool.append((0..<50).map { record($0, pad: 1_000) }) }
        try FileManager.default.removeItem(atPath: filler)
        try await spool.append((0..<50).map { record($0, pad: 1_000) })
        let read = try spool.read(from: spool.cursor(of: "a"), maxRecords: .max, maxBytes: .max).records
        #expect(read.count == 50)
        spool.close()
    }
}
