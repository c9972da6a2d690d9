// # The spool
//
// Every log batch an agent sends is appended here, made durable, and only then acknowledged. Sinks
// read it later, each at its own pace, so a slow or dead destination never delays agents or the other
// destinations.
//
// ## On disk
// - `<directory>/<20-digit id>.seg`: segment files, append-only, named by increasing id. A segment
//   is closed and a new one opened once it passes `segmentSize`.
// - Each appended batch from one origin (an agent request) is one frame (`SpoolFrame`):
//   `u32 length | u32 CRC-32C | payload`; the payload holds the origin once and then every record.
// - `<directory>/cursors/<sink>`: one cursor per sink, `<segment id> <offset>` in text, replaced
//   atomically (write to a temporary file, rename). A cursor is where that sink reads next.
//
// ## Invariants
// 1. One writer: appends happen under one lock, each batch in a single write(2), so frames never
//    interleave.
// 2. Durable before acknowledged: `append` returns only after an fsync that started after its write
//    finished (group commit: one fsync serves every append waiting in the same window).
// 3. Readers see only durable data: reads stop at the durable position, never at the write position.
// 4. A segment is deleted only when every sink's cursor is past it (in a later segment).
// 5. The spool never holds more than `maxSize` bytes that some sink has not taken yet (bytes behind
//    the slowest cursor); an append that would exceed it fails with `SinkError.full`, and the agent
//    gets a 503 error body and keeps its batch. Delivered bytes waiting for their segment's deletion
//    do not count, so `maxSize == segmentSize` works.
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

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import NIOConcurrencyHelpers
public import NIOCore
import NIOPosix

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

    private struct State {
        /// Segment id → size in bytes, for every segment on disk.
        var segments: [UInt64: Int] = [:]
        var writeFD: Int32 = -1
        var writeSegment: UInt64 = 0
        var writeOffset = 0
        /// Closed segments' descriptors, fsynced and closed by the next sync.
        var retired: [Int32] = []
        var durable = Position(segment: 0, offset: 0)
        var written: UInt64 = 0
        var cursors: [String: Position] = [:]
        var totalBytes = 0
        var closed = false
    }

    public let configuration: Configuration
    /// What recovery found and repaired when the spool was opened.
    public let recoveryReport: [String]
    private let state: NIOLockedValueBox<State>
    private let commit: GroupCommit

    /// Opens the spool, recovering segments and loading cursors for `sinks`.
    /// - Throws: `SinkError.io` when the folder or a segment cannot be read or repaired.
    public init(configuration: Configuration, sinks: [String]) throws {
        self.configuration = configuration
        let directory = configuration.directory
        try FileSink.makeDirectory(directory + "/cursors")
        var state = State()
        var report: [String] = []
        let ids = try Self.segmentIDs(in: directory)
        for id in ids {
            let path = Self.path(directory, id)
            let (validLength, problem) = try Self.scan(path)
            if let problem {
                report.append("segment \(id): \(problem); truncated at byte \(validLength)")
                guard truncate(path, off_t(validLength)) == 0 else { throw SinkError.io("cannot truncate \(path)") }
            }
            state.segments[id] = validLength
            state.totalBytes += validLength
        }
        let oldest = ids.first ?? 1
        let newest = ids.last ?? 1
        for sink in sinks {
            let cursor = Self.loadCursor(directory, sink)
            if let cursor, cursor.segment >= oldest, cursor.segment <= newest {
                state.cursors[sink] = Position(segment: cursor.segment, offset: min(cursor.offset, state.segments[cursor.segment] ?? 0))
            } else {
                if let cursor { report.append("cursor of \(sink) at \(cursor) is outside the spool; moved to \(oldest):0") }
                state.cursors[sink] = Position(segment: oldest, offset: 0)
            }
        }
        // Append to the newest segment (or start the first one).
        state.writeSegment = newest
        state.writeOffset = state.segments[newest] ?? 0
        state.segments[newest] = state.writeOffset
        let fd = open(Self.path(directory, newest), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw SinkError.io("cannot open spool segment in \(directory): \(String(cString: strerror(errno)))") }
        state.writeFD = fd
        state.durable = Position(segment: newest, offset: state.writeOffset)
        try FileSink.syncDirectory(directory)
        self.recoveryReport = report
        let box = NIOLockedValueBox(state)
        self.state = box
        self.commit = GroupCommit(window: configuration.commitWindow) {
            let (fd, retired, target) = box.withLockedValue { state in
                defer { state.retired.removeAll() }
                return (state.writeFD, state.retired, Position(segment: state.writeSegment, offset: state.writeOffset))
            }
            for old in retired {
                _ = fsync(old)
                _ = Glibc.close(old)
            }
            if fsync(fd) != 0 { throw SinkError.io("fsync of spool segment failed: \(String(cString: strerror(errno)))") }
            box.withLockedValue { state in
                if state.durable < target { state.durable = target }
            }
        }
    }

    // MARK: - Writing

    /// Appends `records` and returns once they are durable.
    ///
    /// - Important: Acknowledge the agent only after this returns.
    /// - Throws: `SinkError.full` past `maxSize`, `SinkError.io` on a write or fsync failure.
    public func append(_ records: [LogRecord]) async throws {
        guard !records.isEmpty else { return }
        var buffer = ByteBuffer()
        buffer.reserveCapacity(records.reduce(0) { $0 + $1.json.readableBytes + 96 + $1.hostIdentifier.utf8.count })
        SpoolFrame.encode(records, into: &buffer)
        let frames = buffer
        let sequence = try await NIOThreadPool.singleton.runIfActive { [self] in try write(frames) }
        try await commit.waitUntilDurable(sequence)
    }

    private func write(_ buffer: ByteBuffer) throws -> UInt64 {
        try state.withLockedValue { state in
            guard !state.closed else { throw SinkError.closed }
            // Roll first: a full segment that every sink has read must not count against the limit.
            if state.writeOffset > 0 && state.writeOffset + buffer.readableBytes > configuration.segmentSize {
                try roll(&state)
            }
            let unsent = Self.unsentBytes(state)
            guard unsent + buffer.readableBytes <= configuration.maxSize else {
                throw SinkError.full("spool is full (\(unsent) of \(configuration.maxSize) bytes not yet delivered)")
            }
            let fd = state.writeFD
            do {
                try buffer.withUnsafeReadableBytes { try FileIO.writeAll(fd, $0, what: "spool segment") }
            } catch {
                // Drop a partial frame so the segment stays a sequence of whole frames.
                _ = ftruncate(fd, off_t(state.writeOffset))
                throw error
            }
            state.writeOffset += buffer.readableBytes
            state.segments[state.writeSegment] = state.writeOffset
            state.totalBytes += buffer.readableBytes
            state.written += 1
            return state.written
        }
    }

    /// Bytes behind the slowest cursor: what some sink has yet to take. Delivered bytes still on disk
    /// (a segment waiting for deletion, the read part of the write segment) do not count.
    private static func unsentBytes(_ state: State) -> Int {
        guard let slowest = state.cursors.values.min() else { return state.totalBytes }
        var bytes = 0
        for (id, size) in state.segments where id >= slowest.segment {
            bytes += id == slowest.segment ? max(0, size - slowest.offset) : size
        }
        return bytes
    }

    /// Bytes that some sink has not taken yet (the figure `maxSize` limits).
    public var unsentSize: Int { state.withLockedValue { Self.unsentBytes($0) } }

    private func roll(_ state: inout State) throws {
        let next = state.writeSegment + 1
        let fd = open(Self.path(configuration.directory, next), O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw SinkError.io("cannot create spool segment: \(String(cString: strerror(errno)))") }
        // The old segment is complete: make it durable now, so the durable position can move to the new one.
        _ = fsync(state.writeFD)
        _ = Glibc.close(state.writeFD)
        try? FileSink.syncDirectory(configuration.directory)
        state.writeFD = fd
        state.writeSegment = next
        state.writeOffset = 0
        state.segments[next] = 0
    }

    // MARK: - Reading

    /// Where `sink` reads next.
    public func cursor(of sink: String) -> Position {
        state.withLockedValue { $0.cursors[sink] ?? Position(segment: $0.segments.keys.min() ?? 1, offset: 0) }
    }

    /// The end of durable data.
    public var durablePosition: Position { state.withLockedValue { $0.durable } }

    /// Reads durable records from `start`: at most `maxRecords`, and about `maxBytes` of frames.
    /// - Returns: the records and the position after the last one read.
    /// - Throws: `SinkError.io` when a segment cannot be read or a frame is corrupt.
    public func read(from start: Position, maxRecords: Int, maxBytes: Int) throws -> (records: [LogRecord], next: Position) {
        var position = start
        var records: [LogRecord] = []
        var bytesRead = 0
        while records.count < maxRecords && bytesRead < maxBytes {
            let (durable, segments) = state.withLockedValue { ($0.durable, $0.segments) }
            let nextSegment = segments.keys.filter { $0 > position.segment }.min()
            guard let size = segments[position.segment], position.segment <= durable.segment else {
                // Deleted past every cursor, or not yet durable.
                guard position.segment < durable.segment, let nextSegment else { break }
                position = Position(segment: nextSegment, offset: 0)
                continue
            }
            let end = position.segment < durable.segment ? size : durable.offset
            if position.offset >= end {
                guard position.segment < durable.segment, let nextSegment else { break }
                position = Position(segment: nextSegment, offset: 0)
                continue
            }
            let path = Self.path(configuration.directory, position.segment)
            let window = min(end - position.offset, max(maxBytes - bytesRead, 64 << 10))
            var view = try Self.pread(path, offset: position.offset, length: window)
            var consumed = 0
            frames: while records.count < maxRecords, view.readableBytes > 0 {
                switch SpoolFrame.decode(view) {
                case .records(let decoded, let length):
                    records += decoded
                    view.moveReaderIndex(forwardBy: length)
                    consumed += length
                case .incomplete:
                    break frames
                case .corrupt(let why):
                    throw SinkError.io("spool frame at \(position.segment):\(position.offset + consumed) is corrupt: \(why)")
                }
            }
            if consumed == 0 {
                // A single frame larger than the window: read exactly that frame.
                let header = try Self.pread(path, offset: position.offset, length: SpoolFrame.headerSize)
                guard let size = header.getInteger(at: header.readerIndex, endianness: .little, as: UInt32.self),
                    position.offset + SpoolFrame.headerSize + Int(size) <= end,
                    case .records(let decoded, let length) = SpoolFrame.decode(
                        try Self.pread(path, offset: position.offset, length: SpoolFrame.headerSize + Int(size)))
                else { throw SinkError.io("spool frame at \(position) is corrupt") }
                records += decoded
                consumed = length
            }
            position.offset += consumed
            bytesRead += consumed
        }
        return (records, position)
    }

    /// Gives `sink` a cursor if it has none: the one saved on disk if it is still inside the spool
    /// (the sink ran before under this name), else the start of the oldest segment.
    public func addSink(_ sink: String) {
        let saved = Self.loadCursor(configuration.directory, sink)
        state.withLockedValue { state in
            guard state.cursors[sink] == nil else { return }
            let oldest = state.segments.keys.min() ?? state.writeSegment
            if let saved, saved.segment >= oldest, let size = state.segments[saved.segment] {
                state.cursors[sink] = Position(segment: saved.segment, offset: min(saved.offset, size))
            } else {
                state.cursors[sink] = Position(segment: oldest, offset: 0)
            }
        }
    }

    /// Forgets `sink`'s cursor (in memory and on disk), so segments are no longer kept for it.
    public func removeSink(_ sink: String) {
        state.withLockedValue { state in state.cursors[sink] = nil }
        unlink(configuration.directory + "/cursors/" + sink)
    }

    /// Saves `sink`'s cursor and deletes the segments every sink has passed.
    public func commit(sink: String, to position: Position) throws {
        let removable: [UInt64] = state.withLockedValue { state in
            state.cursors[sink] = position
            let oldestNeeded = state.cursors.values.map(\.segment).min() ?? state.writeSegment
            let ids = state.segments.keys.filter { $0 < oldestNeeded && $0 != state.writeSegment }
            for id in ids {
                state.totalBytes -= state.segments[id] ?? 0
                state.segments[id] = nil
            }
            return ids
        }
        try Self.saveCursor(configuration.directory, sink, position)
        for id in removable { unlink(Self.path(configuration.directory, id)) }
    }

    /// Bytes of segments on disk.
    public var size: Int { state.withLockedValue { $0.totalBytes } }

    /// Number of segment files.
    public var segmentCount: Int { state.withLockedValue { $0.segments.count } }

    /// Stops appends and closes the segment file.
    public func close() {
        let (fd, retired) = state.withLockedValue { state in
            state.closed = true
            defer {
                state.writeFD = -1
                state.retired.removeAll()
            }
            return (state.writeFD, state.retired)
        }
        for old in retired { _ = Glibc.close(old) }
        if fd >= 0 {
            _ = fsync(fd)
            _ = Glibc.close(fd)
        }
    }

    // MARK: - Files

    static func path(_ directory: String, _ id: UInt64) -> String {
        let digits = String(id)
        return directory + "/" + String(repeating: "0", count: max(0, 20 - digits.count)) + digits + ".seg"
    }

    static func segmentIDs(in directory: String) throws -> [UInt64] {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else {
            throw SinkError.io("cannot list spool folder \(directory)")
        }
        return names.compactMap { name in name.hasSuffix(".seg") ? UInt64(name.dropLast(4)) : nil }.sorted()
    }

    /// The length of the valid prefix of a segment, and what ended it early, if anything.
    static func scan(_ path: String) throws -> (Int, String?) {
        guard let data = FileManager.default.contents(atPath: path) else { throw SinkError.io("cannot read \(path)") }
        var buffer = ByteBuffer(bytes: data)
        var valid = 0
        while buffer.readableBytes > 0 {
            switch SpoolFrame.decode(buffer) {
            case .records(_, let length):
                valid += length
                buffer.moveReaderIndex(forwardBy: length)
            case .incomplete:
                return (valid, "torn frame at the end (\(buffer.readableBytes) bytes)")
            case .corrupt(let why):
                return (valid, "corrupt frame (\(why)), \(buffer.readableBytes) bytes dropped")
            }
        }
        return (valid, nil)
    }

    static func pread(_ path: String, offset: Int, length: Int) throws -> ByteBuffer {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw SinkError.io("cannot open \(path): \(String(cString: strerror(errno)))") }
        defer { _ = Glibc.close(fd) }
        var buffer = ByteBuffer()
        buffer.reserveCapacity(length)
        let read = try buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: length) { target in
            var done = 0
            while done < length {
                let n = Glibc.pread(fd, target.baseAddress! + done, length - done, off_t(offset + done))
                if n < 0 {
                    if errno == EINTR { continue }
                    throw SinkError.io("read of \(path) failed: \(String(cString: strerror(errno)))")
                }
                if n == 0 { break }
                done += n
            }
            return done
        }
        _ = read
        return buffer
    }

    static func loadCursor(_ directory: String, _ sink: String) -> Position? {
        guard let text = try? String(contentsOfFile: directory + "/cursors/" + sink, encoding: .utf8) else { return nil }
        let parts = text.split(whereSeparator: { $0 == " " || $0 == "\n" })
        guard parts.count == 2, let segment = UInt64(parts[0]), let offset = Int(parts[1]) else { return nil }
        return Position(segment: segment, offset: offset)
    }

    static func saveCursor(_ directory: String, _ sink: String, _ position: Position) throws {
        let path = directory + "/cursors/" + sink
        let temporary = path + ".tmp"
        do {
            try Data("\(position.segment) \(position.offset)\n".utf8).write(to: URL(fileURLWithPath: temporary))
        } catch {
            throw SinkError.io("cannot write cursor of \(sink): \(error)")
        }
        guard rename(temporary, path) == 0 else { throw SinkError.io("cannot save cursor of \(sink)") }
    }
}
