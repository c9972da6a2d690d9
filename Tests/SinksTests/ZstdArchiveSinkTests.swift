import Foundation
import NIOCore
import Testing
@testable import Sinks

/// Archives are checked with the real `zstd` CLI.
@Suite struct ZstdArchiveSinkTests {
    func archives(_ directory: String, suffix: String = ".jsonl.zst") -> [String] {
        (FileManager.default.enumerator(atPath: directory)?.compactMap { $0 as? String } ?? [])
            .filter { $0.hasSuffix(suffix) }.sorted().map { directory + "/" + $0 }
    }

    func decompressedLines(_ files: [String]) throws -> [String] {
        var lines: [String] = []
        for file in files {
            let (status, output) = try run(["zstd", "-dc", file])
            #expect(status == 0)
            lines += String(decoding: output, as: UTF8.self).split(separator: "\n").map(String.init)
        }
        return lines
    }

    @Test func oneStreamPerFileThatTheCLIAccepts() async throws {
        let dir = temporaryDirectory("zstd")
        let sink = try ZstdArchiveSink(configuration: .init(name: "archive", directory: dir, level: 3))
        // An archive also ends when the hour does, which one run in many thousands sees.
        let hour = ZstdArchiveSink.hourPath(Date())
        var expected: [String] = []
        for batch in 0..<20 {
            let records = (0..<50).map { record(batch * 50 + $0) }
            expected += records.map { String(buffer: $0.json) }
            #expect(await sink.deliver(records) == .delivered)
        }
        guard ZstdArchiveSink.hourPath(Date()) == hour else {
            await sink.close()
            return
        }
        #expect(archives(dir).isEmpty, "the open archive is still .partial")
        #expect(archives(dir, suffix: ".partial").count == 1)
        await sink.close()
        let files = archives(dir)
        #expect(files.count == 1)
        #expect(files[0].range(of: #"/\d{4}/\d{2}/\d{2}/\d{2}-0001\.jsonl\.zst$"#, options: .regularExpression) != nil)
        #expect(try run(["zstd", "-t", files[0]]).status == 0)
        #expect(try decompressedLines(files) == expected)
        // One frame: `zstd -l` reports a single frame for the whole file.
        let listing = String(decoding: try run(["zstd", "-lv", files[0]]).output, as: UTF8.self)
        #expect(listing.contains("# Zstandard Frames: 1"))
    }

    @Test func rollsBySizeIntoCompletedFiles() async throws {
        let dir = temporaryDirectory("zstd")
        let sink = try ZstdArchiveSink(configuration: .init(name: "archive", directory: dir, maxFileSize: 2000))
        var expected: [String] = []
        for batch in 0..<6 {
            let records = (0..<20).map { record(batch * 20 + $0, pad: 20) }
            expected += records.map { String(buffer: $0.json) }
            #expect(await sink.deliver(records) == .delivered)
        }
        await sink.close()
        let files = archives(dir)
        #expect(files.count >= 3)
        for file in files { #expect(try run(["zstd", "-t", file]).status == 0) }
        #expect(try decompressedLines(files) == expected)
    }

    @Test func aPartialLeftByACrashIsSalvaged() async throws {
        let dir = temporaryDirectory("zstd")
        let crashed = try ZstdArchiveSink(configuration: .init(name: "archive", directory: dir))
        let records = (0..<100).map { record($0) }
        #expect(await crashed.deliver(records) == .delivered)
        // No close(): the process "died" with the archive open.
        let restarted = try ZstdArchiveSink(configuration: .init(name: "archive", directory: dir))
        #expect(restarted.recoveryReport.count == 1)
        #expect(archives(dir, suffix: ".partial").isEmpty)
        let files = archives(dir)
        #expect(files.count == 1)
        #expect(try run(["zstd", "-t", files[0]]).status == 0)
        #expect(try decompressedLines(files) == records.map { String(buffer: $0.json) })
        await restarted.close()
    }
}
