import Foundation
import NIOCore
import Testing
@testable import Sinks

/// The spool's promise on a failing disk (`FaultInjectingFileSystem`): every append that returned is
/// read back whole, also after reopening; an append fails with `SinkError` (the agent's 503) only
/// while the fault lasts; and once it is gone appends work again, with no restart and nothing to
/// repair, and a reopen works too.
@Suite struct SpoolFaultTests {
    func open(_ directory: String, _ fileSystem: any SpoolFileSystem = POSIXFileSystem(), segmentSize: Int = 64 << 20,
              commitWindow: Duration = .zero) throws -> Spool {
        try Spool(configuration: .init(directory: directory, segmentSize: segmentSize, commitWindow: commitWindow),
                  sinks: ["a"], fileSystem: fileSystem)
    }

    func recordID(_ record: LogRecord) -> Int {
        Int(String(buffer: record.json).split(separator: ",")[0].dropFirst(6))!
    }

    /// Every record the spool serves to sink `a` from its cursor, by id.
    func stored(_ spool: Spool) throws -> [Int] {
        try spool.read(from: spool.cursor(of: "a"), maxRecords: .max, maxBytes: .max).records.map { recordID($0) }
    }

    func batch(_ ids: Range<Int>) -> [LogRecord] {
        ids.map { record($0, pad: 200) }
    }

    func segmentFiles(_ directory: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".seg") }
    }

    /// Appends before, during and after `fault`, and checks what is stored at each step and after
    /// reopening. `cleanRecovery`: the fault leaves nothing for recovery to repair.
    func appendsSurvive(_ fault: FaultInjectingFileSystem.Fault, cleanRecovery: Bool = true) async throws {
        let directory = temporaryDirectory("spool-fault")
        let disk = FaultInjectingFileSystem()
        let spool = try open(directory, disk)
        try await spool.append(batch(0..<10))
        disk.inject(fault)
        for attempt in 0..<3 {
            await #expect(throws: SinkError.self, "attempt \(attempt) while the fault lasts") {
                try await spool.append(batch(100..<110))
            }
        }
        #expect(disk.injected > 0)
        #expect(try stored(spool) == Array(0..<10), "no part of a refused batch is served")

        disk.inject(nil)
        try await spool.append(batch(10..<20))
        try await spool.append(batch(20..<30))
        #expect(try stored(spool) == Array(0..<30))
        spool.close()

        let reopened = try open(directory)
        #expect(reopened.recoveryReport.isEmpty == cleanRecovery, "\(reopened.recoveryReport)")
        #expect(try stored(reopened) == Array(0..<30))
        try await reopened.append(batch(30..<40))
        #expect(try stored(reopened) == Array(0..<40))
        reopened.close()
    }

    @Test func shortWritesAreContinuedAndEveryFrameStaysWhole() async throws {
        let directory = temporaryDirectory("spool-fault")
        let disk = FaultInjectingFileSystem()
        disk.inject(.shortWrites(bytes: 7))
        let spool = try open(directory, disk)
        for start in stride(from: 0, to: 50, by: 10) { try await spool.append(batch(start..<(start + 10))) }
        #expect(disk.injected > 50, "each frame took many writes")
        #expect(try stored(spool) == Array(0..<50))
        spool.close()
        let reopened = try open(directory)
        #expect(reopened.recoveryReport.isEmpty)
        #expect(try stored(reopened) == Array(0..<50))
        reopened.close()
    }

    @Test func noSpaceLeftRefusesTheBatchAndTheNextAppendAfterSpaceReturnsWorks() async throws {
        try await appendsSurvive(.writeFails(ENOSPC, after: 0))
    }

    /// The disk fills in the middle of a frame: the part written is cut off, so the next frame
    /// starts on a frame boundary and the segment never holds half a batch.
    @Test func aWriteThatStopsHalfwayNeverLeavesHalfAFrame() async throws {
        try await appendsSurvive(.writeFails(ENOSPC, after: 150))
    }

    /// Even the cut fails: the segment ends before the torn frame (recovery truncates it on reopen)
    /// and appends go on in a new segment.
    @Test func aTornFrameThatCannotBeCutOffEndsItsSegment() async throws {
        try await appendsSurvive(.tornWrite(EIO, after: 150), cleanRecovery: false)
    }

    /// The data reached the page cache, so it could be read back, but it is not durable: never served.
    @Test func aFailedFsyncRefusesTheBatchAndNeverServesIt() async throws {
        try await appendsSurvive(.fsyncFails(EIO))
    }

    /// Fsyncs fail for a while as sixteen writers append through shared group commits: every append
    /// a failed fsync covered (or that was written while it ran) fails, none of those records is ever
    /// served, and every append that returned is stored, each record once, before and after a reopen.
    @Test func aFailedGroupCommitFailsEveryAppendItCoveredAndNoneOfThemIsServed() async throws {
        let directory = temporaryDirectory("spool-fault")
        let disk = FaultInjectingFileSystem()
        let spool = try open(directory, disk, commitWindow: .milliseconds(2))
        // Each writer waits for its append before the next, so there are at least ten segment fsyncs:
        // three pass, then four fail (an fsync after a failed one always finds new, unsynced writes).
        disk.inject(.fsyncFails(EIO), passes: 3, times: 4)
        let outcomes = try await withThrowingTaskGroup(of: [(ids: Range<Int>, stored: Bool)].self,
                                                       returning: [(ids: Range<Int>, stored: Bool)].self) { group in
            for writer in 0..<16 {
                group.addTask {
                    var mine: [(ids: Range<Int>, stored: Bool)] = []
                    for round in 0..<10 {
                        let ids = (writer * 1000 + round * 10)..<(writer * 1000 + round * 10 + 10)
                        do {
                            try await spool.append(batch(ids))
                            mine.append((ids, true))
                        } catch is SinkError {
                            mine.append((ids, false))
                        }
                    }
                    return mine
                }
            }
            var all: [(ids: Range<Int>, stored: Bool)] = []
            for try await some in group { all += some }
            return all
        }
        #expect(disk.injected == 4)
        let acknowledged = Set(outcomes.filter { $0.stored }.flatMap { $0.ids })
        let refused = Set(outcomes.filter { !$0.stored }.flatMap { $0.ids })
        #expect(!refused.isEmpty, "failed fsyncs covered appends")
        #expect(Set(try stored(spool)) == acknowledged)
        try await spool.append(batch(90_000..<90_010))
        spool.close()

        let reopened = try open(directory)
        let afterReopen = try stored(reopened)
        #expect(Set(afterReopen) == acknowledged.union(90_000..<90_010))
        #expect(afterReopen.count == acknowledged.count + 10, "each record once")
        #expect(Set(afterReopen).isDisjoint(with: refused))
        reopened.close()
    }

    /// The cursor is saved, then the process dies before the segments it passed are deleted
    /// (deletion fails, and the spool is never closed). Reopening the folder repeats nothing, loses
    /// nothing, and the first commit deletes what was left.
    @Test func aCrashBetweenCursorSaveAndSegmentDeletionRepeatsNothingAndLosesNothing() async throws {
        let directory = temporaryDirectory("spool-fault")
        let disk = FaultInjectingFileSystem()
        let spool = try open(directory, disk, segmentSize: 300)
        for id in 0..<5 { try await spool.append([record(id, pad: 100)]) }
        #expect(try segmentFiles(directory).count == 5)
        disk.inject(.unlinkFails(EIO))
        let delivered = try spool.read(from: spool.cursor(of: "a"), maxRecords: .max, maxBytes: .max)
        #expect(delivered.records.map { recordID($0) } == Array(0..<5))
        try spool.commit(sink: "a", to: delivered.next)
        #expect(disk.injected == 4)
        #expect(try segmentFiles(directory).count == 5, "nothing deleted")
        // Ingest does not depend on deletion.
        try await spool.append([record(5, pad: 100)])

        let reopened = try open(directory)
        #expect(reopened.recoveryReport.isEmpty)
        #expect(reopened.cursor(of: "a") == delivered.next)
        #expect(try stored(reopened) == [5])
        let rest = try reopened.read(from: reopened.cursor(of: "a"), maxRecords: .max, maxBytes: .max)
        try reopened.commit(sink: "a", to: rest.next)
        #expect(try segmentFiles(directory).count == 1, "only the segment being written remains")
        try await reopened.append([record(6)])
        #expect(try stored(reopened) == [6])
        reopened.close()
        spool.close()
    }

    /// Without a restart: a segment whose deletion failed stays listed, and the next commit after
    /// the fault deletes it.
    @Test func aSegmentThatCouldNotBeDeletedIsDeletedByTheNextCommit() async throws {
        let directory = temporaryDirectory("spool-fault")
        let disk = FaultInjectingFileSystem()
        let spool = try open(directory, disk, segmentSize: 300)
        for id in 0..<5 { try await spool.append([record(id, pad: 100)]) }
        disk.inject(.unlinkFails(EIO))
        let first = try spool.read(from: spool.cursor(of: "a"), maxRecords: .max, maxBytes: .max)
        try spool.commit(sink: "a", to: first.next)
        #expect(spool.segmentCount == 5)
        #expect(spool.unsentSize == 0, "segments left behind do not count against the limit")
        disk.inject(nil)
        try await spool.append([record(5, pad: 100)])
        let second = try spool.read(from: spool.cursor(of: "a"), maxRecords: .max, maxBytes: .max)
        #expect(second.records.map { recordID($0) } == [5])
        try spool.commit(sink: "a", to: second.next)
        #expect(spool.segmentCount == 1)
        #expect(try segmentFiles(directory).count == 1)
        spool.close()
    }
}
