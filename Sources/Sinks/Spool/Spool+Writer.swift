#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// Appending: one writer under the lock, one group-commit fsync for everyone waiting, and what a
/// failed write or fsync does (see "When the disk fails" in Spool.swift).
extension Spool {
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
        // The group commit's answer is not the last word. After a failed fsync discarded this write,
        // the next sync (of another segment) wakes it as if covered; and a failed sync also wakes
        // writes an earlier sync had already made durable. What counts is whether the bytes are kept.
        var failure: (any Error)?
        do {
            try await commit.waitUntilDurable(sequence)
        } catch {
            failure = error
        }
        if state.withLockedValue({ $0.isDurable(sequence) }) { return }
        throw failure ?? SinkError.io("fsync of spool segment failed; the batch was not stored")
    }

    /// Writes `buffer` (whole frames) at the end of the write segment.
    /// - Returns: the write's sequence number, for the group commit.
    private func write(_ buffer: ByteBuffer) throws -> UInt64 {
        try state.withLockedValue { state in
            guard !state.closed else { throw SinkError.closed }
            // Roll first: a full segment that every sink has read must not count against the limit.
            if state.mustRoll || (state.writeOffset > 0 && state.writeOffset + buffer.readableBytes > configuration.segmentSize) {
                try roll(&state)
            }
            let unsent = Self.unsentBytes(state)
            guard unsent + buffer.readableBytes <= configuration.maxSize else {
                throw SinkError.full("spool is full (\(unsent) of \(configuration.maxSize) bytes not yet delivered)")
            }
            let fd = state.writeFD
            do {
                try buffer.withUnsafeReadableBytes { try fileSystem.writeAll(fd, $0, what: "spool segment") }
            } catch {
                // Drop a partial frame so the segment stays a sequence of whole frames. If that fails
                // too, the torn frame stays at the end of this segment: nothing more goes after it
                // (readers stop at `writeOffset`, recovery truncates it) and the next append rolls.
                do {
                    try fileSystem.ftruncate(fd, to: state.writeOffset)
                } catch {
                    state.mustRoll = true
                }
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
    static func unsentBytes(_ state: State) -> Int {
        guard let slowest = state.cursors.values.min() else { return state.totalBytes }
        var bytes = 0
        for (id, size) in state.segments where id >= slowest.segment {
            bytes += id == slowest.segment ? max(0, size - slowest.offset) : size
        }
        return bytes
    }

    /// Bytes that some sink has not taken yet (the figure `maxSize` limits).
    public var unsentSize: Int { state.withLockedValue { Self.unsentBytes($0) } }

    /// Starts the next segment. The old one's descriptor waits in `retired`: the next group commit
    /// fsyncs it with the new segment and the folder, so the roll itself never blocks on the disk.
    private func roll(_ state: inout State) throws {
        let next = state.writeSegment + 1
        let fd = try performIO("cannot create spool segment") {
            try fileSystem.open(Self.path(configuration.directory, next), flags: O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC)
        }
        if state.writeFD >= 0 { state.retired.append(state.writeFD) }
        state.writeFD = fd
        state.writeSegment = next
        state.writeOffset = 0
        state.segments[next] = 0
        state.mustRoll = false
        state.directoryNeedsSync = true
    }

    // MARK: - Group commit

    /// What one group commit makes durable, taken under the lock when it starts.
    private struct Claim {
        var retired: [Int32]
        var writeFD: Int32
        var directory: Bool
        /// The last write it covers, and where that write ends.
        var sequence: UInt64
        var target: Position
    }

    /// The group commit's sync: fsyncs every segment written since the last one, then the folder if
    /// it changed, and only then moves the durable position. On failure, discards (never retries).
    ///
    /// Static because the group commit is built in `init`, before the spool exists.
    static func syncWrites(_ box: NIOLockedValueBox<State>, fileSystem: any SpoolFileSystem, directory: String) throws {
        let claim = try box.withLockedValue { state -> Claim in
            guard !state.closed else { throw SinkError.closed }
            defer {
                state.retired.removeAll()
                state.directoryNeedsSync = false
            }
            // With no write segment (after a failed fsync) nothing past the durable position is kept.
            let target = state.writeFD >= 0 ? Position(segment: state.writeSegment, offset: state.writeOffset) : state.durable
            return Claim(retired: state.retired, writeFD: state.writeFD, directory: state.directoryNeedsSync,
                         sequence: state.written, target: target)
        }
        do {
            for fd in claim.retired { try fileSystem.fsync(fd) }
            if claim.writeFD >= 0 { try fileSystem.fsync(claim.writeFD) }
            if claim.directory { try fileSystem.syncDirectory(directory) }
        } catch {
            for fd in claim.retired { fileSystem.close(fd) }
            box.withLockedValue { discardUndurable(&$0, fileSystem: fileSystem, directory: directory) }
            throw SinkError.io("fsync of spool segment failed: \(error)")
        }
        for fd in claim.retired { fileSystem.close(fd) }
        box.withLockedValue { state in
            if state.durable < claim.target { state.durable = claim.target }
            state.synced = max(state.synced, claim.sequence)
        }
    }

    /// After a failed fsync: forgets everything written since the last good one, so it is never read
    /// as durable, and leaves the next append to start a new segment.
    ///
    /// Retrying the fsync would be wrong: Linux reports a writeback error once and may drop the pages,
    /// so a second fsync "succeeds" with the data gone; and a later frame after a lost one would sit
    /// behind a corrupt frame that recovery truncates. The descriptors are closed unsynced, the
    /// durable segment is cut back to the durable offset (on disk too, as far as the disk lets us) and
    /// later segments are deleted. Every write since the last good fsync is marked lost, and `append`
    /// fails each of them, whatever the group commit answers it later.
    private static func discardUndurable(_ state: inout State, fileSystem: any SpoolFileSystem, directory: String) {
        guard !state.closed else { return }
        state.markLost(after: state.synced, through: state.written)
        for fd in state.retired { fileSystem.close(fd) }
        state.retired.removeAll()
        if state.writeFD >= 0 { fileSystem.close(state.writeFD) }
        state.writeFD = -1
        state.mustRoll = true
        state.directoryNeedsSync = true
        let keep = state.durable
        for (id, size) in state.segments where id >= keep.segment {
            let path = Self.path(directory, id)
            if id > keep.segment {
                state.segments[id] = nil
                state.totalBytes -= size
                try? fileSystem.unlink(path)
            } else if size > keep.offset {
                state.segments[id] = keep.offset
                state.totalBytes -= size - keep.offset
                cutBack(path, to: keep.offset, fileSystem)
            }
        }
    }

    /// Truncates `path` to `length` and makes that durable; a failure is left for recovery to meet.
    private static func cutBack(_ path: String, to length: Int, _ fileSystem: any SpoolFileSystem) {
        guard let fd = try? fileSystem.open(path, flags: O_WRONLY | O_CLOEXEC) else { return }
        defer { fileSystem.close(fd) }
        guard (try? fileSystem.ftruncate(fd, to: length)) != nil else { return }
        try? fileSystem.fsync(fd)
    }
}

extension Spool.State {
    /// Records that writes `after + 1 ... through` were discarded. Consecutive failures, with no good
    /// fsync in between, extend the last range, so an outage adds one range, not one per append.
    mutating func markLost(after: UInt64, through: UInt64) {
        guard through > after else { return }
        let range = (after + 1)...through
        if let last = lost.last, last.upperBound + 1 >= range.lowerBound {
            lost[lost.count - 1] = min(last.lowerBound, range.lowerBound)...max(last.upperBound, range.upperBound)
        } else {
            lost.append(range)
        }
    }

    /// Whether write `sequence` is on disk for good: a sync covered it and no failed one discarded it.
    func isDurable(_ sequence: UInt64) -> Bool {
        sequence <= synced && lost.last(where: { $0.contains(sequence) }) == nil
    }
}
