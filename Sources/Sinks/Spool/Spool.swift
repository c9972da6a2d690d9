// # The spool
//
// Every log batch an agent sends is appended here, made durable, and only then acknowledged. Sinks
// read it later, each at its own pace, so a slow or dead destination never delays agents or the other
// destinations.
//
// ## On disk
// - `<directory>/<20-digit id>.seg`: segment files, append-only, named by increasing id. A segment
//   is closed and a new one opened once it passes `segmentSize`. Ids only grow; they may have gaps.
// - Each appended batch from one origin (an agent request) is one frame (`SpoolFrame`):
//   `u32 length | u32 CRC-32C | payload`; the payload holds the origin once and then every record.
// - `<directory>/cursors/<sink>`: one cursor per sink, `<segment id> <offset>` in text, replaced
//   atomically (write to a temporary file, rename). A cursor is where that sink reads next.
//
// ## Invariants
// 1. One writer: appends happen under one lock, each batch written whole before the next starts, so
//    frames never interleave.
// 2. Durable before acknowledged: `append` returns only after an fsync that started after its write
//    finished (group commit: one fsync serves every append waiting in the same window). That fsync
//    covers the write segment, every segment closed since the last one, and the folder when a segment
//    was created.
// 3. Readers see only durable data: reads stop at the durable position, never at the write position.
// 4. A segment is deleted only when every sink's cursor is past it (in a later segment), and only
//    after the cursor that passed it is saved.
// 5. The spool never holds more than `maxSize` bytes that some sink has not taken yet (bytes behind
//    the slowest cursor); an append that would exceed it fails with `SinkError.full`, and the agent
//    gets a 503 error body and keeps its batch. Delivered bytes waiting for their segment's deletion
//    do not count, so `maxSize == segmentSize` works.
//
// ## When the disk fails
// Every failure below makes `append` throw `SinkError.io` (a 503: the agent keeps its batch) only
// while it lasts; the next append after it succeeds, with no restart and nothing to repair by hand.
// - A short write is continued. A write that fails (ENOSPC, EIO) cuts the segment back to its last
//   whole frame. If even that cut fails, the segment ends before the torn frame (reads stop there and
//   recovery truncates it) and the next append starts a new segment.
// - A failed fsync is never retried: Linux may already have dropped the pages it could not write and
//   would report the next fsync of the file as a success. Everything written since the last good
//   fsync is discarded instead: every append waiting for it fails, including appends a later fsync
//   seems to cover; the segment is cut back to the durable position (in memory, and on disk as far
//   as the disk allows); later segments are deleted; and the next append starts a new segment, so
//   data acknowledged afterwards never shares a file with pages in an unknown state. If the cut on
//   disk fails too and the process restarts, recovery may find some of those frames whole and deliver
//   them although their agents were refused: a duplicate of the batch the agent sends again, which
//   at-least-once delivery allows. Nothing acknowledged is ever lost or put behind a corrupt frame.
// - A segment that cannot be deleted stays listed, and the next commit tries again (after a restart,
//   recovery finds it and the first commit does).
//
// ## Recovery (on open)
// Every segment is scanned frame by frame. At the first frame that is torn (the file ends inside it)
// or corrupt (bad length or checksum), the segment is truncated there and the loss reported in
// `recoveryReport`. Only a crash between write and fsync can leave a torn tail, and such a batch was
// never acknowledged, so truncating it loses nothing an agent was told was stored. A cursor that is
// missing (a new sink) starts at the oldest segment; one that points before the oldest segment (its
// file was not yet rewritten when the segment was deleted) moves to the oldest segment.
//
// Delivery is at least once: a cursor is saved after a sink reports a batch delivered, so a crash in
// between delivers that batch again.
//
// ## Files
// `Spool.swift` the types, the state and opening; `Spool+Recovery.swift` the scan on open;
// `Spool+Writer.swift` appends, group commit, segment rolls, the size limit and failed fsyncs;
// `Spool+Reader.swift` reads, cursors and segment deletion. Every file operation goes through a
// `SpoolFileSystem`, so tests can make the disk fail (`SpoolFaultTests`).

import NIOConcurrencyHelpers

/// The durable, append-only log of accepted records, with one read cursor per sink.
public final class Spool: Sendable {
    public struct Configuration: Sendable {
        public var directory: String
        /// Past this many bytes not yet taken by every sink, appends are refused.
        public var maxSize: Int
        /// A segment is closed and a new one started past this size.
        public var segmentSize: Int
        /// How long the first writer waits for others before the shared fsync.
        public var commitWindow: Duration
        /// An exact resend of a stored batch within this window is acknowledged without being stored
        /// again (`LogPipeline` applies it, in front of the spool).
        public var resendWindow: Duration = .seconds(120)

        public init(directory: String, maxSize: Int = 1 << 30, segmentSize: Int = 64 << 20, commitWindow: Duration = .milliseconds(2)) {
            self.directory = directory
            self.maxSize = maxSize
            self.segmentSize = segmentSize
            self.commitWindow = commitWindow
        }
    }

    /// A place in the spool: a segment and a byte offset in it.
    public struct Position: Sendable, Comparable, Hashable, CustomStringConvertible {
        public var segment: UInt64
        public var offset: Int

        public init(segment: UInt64, offset: Int) {
            self.segment = segment
            self.offset = offset
        }

        public static func < (lhs: Position, rhs: Position) -> Bool {
            (lhs.segment, lhs.offset) < (rhs.segment, rhs.offset)
        }

        public var description: String { "\(segment):\(offset)" }
    }

    /// Everything the spool's one lock guards.
    struct State {
        /// Segment id → size in bytes (whole frames only), for every segment on disk.
        var segments: [UInt64: Int] = [:]
        /// The write segment's descriptor; -1 after a failed fsync, until the next append rolls.
        var writeFD: Int32 = -1
        var writeSegment: UInt64 = 0
        var writeOffset = 0
        /// The next append must start a new segment: this one may end in a torn frame, or a failed
        /// fsync left it in an unknown state.
        var mustRoll = false
        /// Closed segments' descriptors, fsynced and closed by the next group commit.
        var retired: [Int32] = []
        /// A segment was created or deleted since the last group commit: the folder needs an fsync too.
        var directoryNeedsSync = false
        var durable = Position(segment: 0, offset: 0)
        /// Sequence number of the last write.
        var written: UInt64 = 0
        /// Every write numbered up to this is durable, except those in `lost`.
        var synced: UInt64 = 0
        /// Writes a failed fsync discarded; few ranges, as consecutive failures merge into one.
        var lost: [ClosedRange<UInt64>] = []
        var cursors: [String: Position] = [:]
        var totalBytes = 0
        var closed = false
    }

    public let configuration: Configuration
    /// What recovery found and repaired when the spool was opened.
    public let recoveryReport: [String]
    let state: NIOLockedValueBox<State>
    let commit: GroupCommit
    let fileSystem: any SpoolFileSystem

    /// Opens the spool, recovering segments and loading cursors for `sinks`.
    /// - Throws: `SinkError.io` when the folder or a segment cannot be read or repaired.
    public convenience init(configuration: Configuration, sinks: [String]) throws {
        try self.init(configuration: configuration, sinks: sinks, fileSystem: POSIXFileSystem())
    }

    /// Opens the spool over `fileSystem`: tests pass one that fails on purpose.
    init(configuration: Configuration, sinks: [String], fileSystem: any SpoolFileSystem) throws {
        self.configuration = configuration
        self.fileSystem = fileSystem
        let (state, report) = try Self.recover(configuration, sinks: sinks, fileSystem: fileSystem)
        self.recoveryReport = report
        let box = NIOLockedValueBox(state)
        self.state = box
        let directory = configuration.directory
        self.commit = GroupCommit(window: configuration.commitWindow) {
            try Spool.syncWrites(box, fileSystem: fileSystem, directory: directory)
        }
    }

    /// Stops appends and closes the segment files. Appends still waiting for their fsync fail.
    public func close() {
        let descriptors = state.withLockedValue { state in
            state.closed = true
            defer {
                state.writeFD = -1
                state.retired.removeAll()
            }
            return state.retired + (state.writeFD >= 0 ? [state.writeFD] : [])
        }
        for fd in descriptors {
            try? fileSystem.fsync(fd)
            fileSystem.close(fd)
        }
    }

    /// The file of segment `id` in `directory`.
    static func path(_ directory: String, _ id: UInt64) -> String {
        let digits = String(id)
        return directory + "/" + String(repeating: "0", count: max(0, 20 - digits.count)) + digits + ".seg"
    }
}
