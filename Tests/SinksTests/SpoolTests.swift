import Foundation
import NIOCore
import Testing
@testable import Sinks

/// The spool owns the durability promise: framing, recovery, limits, cursors and deletion.
@Suite struct SpoolTests {
    func open(_ directory: String, sinks: [String] = ["a"], maxSize: Int = 1 << 30, segmentSize: Int = 64 << 20) throws -> Spool {
        try Spool(configuration: .init(directory: directory, maxSize: maxSize, segmentSize: segmentSize, commitWindow: .zero), sinks: sinks)
    }

    func readAll(_ spool: Spool, from: Spool.Position? = nil, sink: String = "a") throws -> [LogRecord] {
        try spool.read(from: from ?? spool.cursor(of: sink), maxRecords: .max, maxBytes: .max).records
    }

    func ids(_ records: [LogRecord]) -> [Int] {
        records.map { Int(String(buffer: $0.json).split(separator: ",")[0].dropFirst(6))! }
    }

    @Test func roundTripKeepsEveryField() async throws {
        let spool = try open(temporaryDirectory("spool"))
        var original = record(1)
        original.isSnapshot = true
        original.severity = 2
        try await spool.append([original, record(2, kind: .distributed)])
        let read = try readAll(spool)
        #expect(read.count == 2)
        #expect(read[0].kind == .result && read[0].isSnapshot && read[0].severity == 2)
        #expect(read[0].nodeID == "node-1" && read[0].hostIdentifier == "host-node-1" && read[0].secretName == "default")
        #expect(read[0].queryName == "pack_test_q" && read[0].platform == "linux")
        #expect(String(buffer: read[0].json) == String(buffer: original.json))
        #expect(abs(read[0].receivedAt.timeIntervalSince(original.receivedAt)) < 0.002)
        #expect(read[1].kind == .distributed && read[1].severity == nil)
        spool.close()
    }

    @Test func restartInTheMiddleOfASegmentContinuesIt() async throws {
        let dir = temporaryDirectory("spool")
        var spool = try open(dir)
        try await spool.append((0..<10).map { record($0) })
        spool.close()
        spool = try open(dir)
        #expect(spool.recoveryReport.isEmpty)
        try await spool.append((10..<20).map { record($0) })
        #expect(ids(try readAll(spool)) == Array(0..<20))
        #expect(spool.segmentCount == 1)
        spool.close()
    }

    @Test func tornTailIsTruncatedOnRestart() async throws {
        let dir = temporaryDirectory("spool")
        var spool = try open(dir)
        try await spool.append((0..<5).map { record($0) })
        spool.close()
        let segment = Spool.path(dir, 1)
        let size = try FileManager.default.attributesOfItem(atPath: segment)[.size] as! Int
        #expect(truncate(segment, off_t(size - 7)) == 0)  // a crash in the middle of the last frame
        spool = try open(dir)
        #expect(spool.recoveryReport.count == 1)
        #expect(spool.recoveryReport[0].contains("torn frame"))
        #expect(ids(try readAll(spool)) == [0, 1, 2, 3])
        try await spool.append([record(5)])
        #expect(ids(try readAll(spool)) == [0, 1, 2, 3, 5])
        spool.close()
    }

    @Test func flippedChecksumIsCaughtAndTruncated() async throws {
        let dir = temporaryDirectory("spool")
        var spool = try open(dir)
        try await spool.append((0..<5).map { record($0) })
        spool.close()
        let segment = Spool.path(dir, 1)
        var data = try Data(contentsOf: URL(fileURLWithPath: segment))
        data[data.count - 3] ^= 0xFF
        try data.write(to: URL(fileURLWithPath: segment))
        spool = try open(dir)
        #expect(spool.recoveryReport.first?.contains("checksum mismatch") == true)
        #expect(ids(try readAll(spool)) == [0, 1, 2, 3])
        spool.close()
    }

    @Test func sizeLimitRefusesAppendsAndStoresNothing() async throws {
        let spool = try open(temporaryDirectory("spool"), maxSize: 2000)
        try await spool.append((0..<5).map { record($0) })
        let before = spool.size
        await #expect(throws: SinkError.self) { try await spool.append((0..<20).map { record($0, pad: 100) }) }
        #expect(spool.size == before)
        #expect(try readAll(spool).count == 5)
        spool.close()
    }

    @Test func cursorsPersistAcrossRestarts() async throws {
        let dir = temporaryDirectory("spool")
        var spool = try open(dir, sinks: ["a", "b"])
        try await spool.append((0..<10).map { record($0) })
        let (first, next) = try spool.read(from: spool.cursor(of: "a"), maxRecords: 4, maxBytes: .max)
        #expect(ids(first) == [0, 1, 2, 3])
        try spool.commit(sink: "a", to: next)
        spool.close()
        spool = try open(dir, sinks: ["a", "b"])
        #expect(spool.cursor(of: "a") == next)
        #expect(ids(try readAll(spool, sink: "a")) == Array(4..<10))
        #expect(ids(try readAll(spool, sink: "b")) == Array(0..<10))
        spool.close()
    }

    @Test func segmentsAreDeletedOnlyWhenEverySinkHasPassedThem() async throws {
        let dir = temporaryDirectory("spool")
        let spool = try open(dir, sinks: ["fast", "slow"], segmentSize: 300)
        for i in 0..<10 { try await spool.append([record(i, pad: 100)]) }
        let segments = spool.segmentCount
        #expect(segments >= 5)
        let all = try spool.read(from: spool.cursor(of: "fast"), maxRecords: .max, maxBytes: .max)
        #expect(ids(all.records) == Array(0..<10))
        try spool.commit(sink: "fast", to: all.next)
        #expect(spool.segmentCount == segments, "the slow sink still needs them")
        let some = try spool.read(from: spool.cursor(of: "slow"), maxRecords: 6, maxBytes: .max)
        try spool.commit(sink: "slow", to: some.next)
        #expect(spool.segmentCount < segments)
        #expect(ids(try readAll(spool, sink: "slow")) == Array(6..<10))
        let rest = try spool.read(from: spool.cursor(of: "slow"), maxRecords: .max, maxBytes: .max)
        try spool.commit(sink: "slow", to: rest.next)
        #expect(spool.segmentCount == 1, "only the segment being written remains")
        let files = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasSuffix(".seg") }
        #expect(files.count == 1)
        spool.close()
    }

    @Test func readersSeeOnlyDurableDataAndLargeFrames() async throws {
        let spool = try open(temporaryDirectory("spool"))
        try await spool.append([record(1, pad: 3 << 20)])  // larger than a read window
        try await spool.append([record(2)])
        let read = try spool.read(from: spool.cursor(of: "a"), maxRecords: .max, maxBytes: 1024)
        #expect(ids(read.records) == [1])
        let next = try spool.read(from: read.next, maxRecords: .max, maxBytes: 1024)
        #expect(ids(next.records) == [2])
        #expect(next.next == spool.durablePosition)
        spool.close()
    }

    @Test func concurrentAppendsShareFsyncsAndAllArrive() async throws {
        let spool = try Spool(configuration: .init(directory: temporaryDirectory("spool"), commitWindow: .milliseconds(2)), sinks: ["a"])
        try await withThrowingTaskGroup(of: Void.self) { group in
            for writer in 0..<16 {
                group.addTask {
                    for batch in 0..<20 { try await spool.append((0..<10).map { record(writer * 1000 + batch * 10 + $0) }) }
                }
            }
            try await group.waitForAll()
        }
        #expect(Set(ids(try readAll(spool))).count == 16 * 20 * 10)
        spool.close()
    }
}
