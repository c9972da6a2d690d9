#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NIOConcurrencyHelpers
import NIOCore

/// Reading: durable records from a position, the sinks' cursors, and deleting segments every sink
/// has passed.
extension Spool {
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
            var view = try readSegment(path, offset: position.offset, length: window)
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
                let header = try readSegment(path, offset: position.offset, length: SpoolFrame.headerSize)
                guard let size = header.getInteger(at: header.readerIndex, endianness: .little, as: UInt32.self),
                    position.offset + SpoolFrame.headerSize + Int(size) <= end,
                    case .records(let decoded, let length) = SpoolFrame.decode(
                        try readSegment(path, offset: position.offset, length: SpoolFrame.headerSize + Int(size)))
                else { throw SinkError.io("spool frame at \(position) is corrupt") }
                records += decoded
                consumed = length
            }
            position.offset += consumed
            bytesRead += consumed
        }
        return (records, position)
    }

    private func readSegment(_ path: String, offset: Int, length: Int) throws -> ByteBuffer {
        try performIO("cannot read \(path)") { try fileSystem.read(path, offset: offset, length: length) }
    }

    // MARK: - Cursors

    /// Gives `sink` a cursor if it has none: the one saved on disk if it is still inside the spool
    /// (the sink ran before under this name), else the start of the oldest segment.
    public func addSink(_ sink: String) {
        let saved = Self.loadCursor(sink, in: configuration.directory, fileSystem)
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
        try? fileSystem.unlink(configuration.directory + "/cursors/" + sink)
    }

    /// Saves `sink`'s cursor and deletes the segments every sink has passed.
    ///
    /// A segment is deleted only after the cursor is saved, so a crash in between leaves a segment
    /// nobody needs, never a cursor pointing into a deleted one. A segment whose deletion fails stays
    /// listed, and the next commit tries again; after a restart, recovery lists it like any other.
    /// - Throws: `SinkError.io` when the cursor cannot be saved (then nothing is deleted).
    public func commit(sink: String, to position: Position) throws {
        let removable: [(id: UInt64, size: Int)] = state.withLockedValue { state in
            state.cursors[sink] = position
            let oldestNeeded = state.cursors.values.map(\.segment).min() ?? state.writeSegment
            let ids = state.segments.keys.filter { $0 < oldestNeeded && $0 != state.writeSegment }
            return ids.map { id -> (id: UInt64, size: Int) in
                let size = state.segments.removeValue(forKey: id) ?? 0
                state.totalBytes -= size
                return (id, size)
            }
        }
        do {
            try saveCursor(sink, position)
        } catch {
            relist(removable)
            throw error
        }
        var undeleted: [(id: UInt64, size: Int)] = []
        for segment in removable {
            do {
                try fileSystem.unlink(Self.path(configuration.directory, segment.id))
            } catch let error as SystemCallError where error.code == ENOENT {
                // Already gone: what deleting it was for.
            } catch {
                undeleted.append(segment)
            }
        }
        relist(undeleted)
    }

    /// Puts segments that are still on disk back in the list.
    private func relist(_ segments: [(id: UInt64, size: Int)]) {
        guard !segments.isEmpty else { return }
        state.withLockedValue { state in
            for segment in segments where state.segments[segment.id] == nil {
                state.segments[segment.id] = segment.size
                state.totalBytes += segment.size
            }
        }
    }

    /// Bytes of segments on disk.
    public var size: Int { state.withLockedValue { $0.totalBytes } }

    /// Number of segment files.
    public var segmentCount: Int { state.withLockedValue { $0.segments.count } }

    /// The cursor `sink` saved, if its file is there and readable.
    static func loadCursor(_ sink: String, in directory: String, _ fileSystem: any SpoolFileSystem) -> Position? {
        guard let bytes = try? fileSystem.readFile(directory + "/cursors/" + sink) else { return nil }
        let parts = String(buffer: bytes).split(whereSeparator: { $0 == " " || $0 == "\n" })
        guard parts.count == 2, let segment = UInt64(parts[0]), let offset = Int(parts[1]) else { return nil }
        return Position(segment: segment, offset: offset)
    }

    /// Replaces `sink`'s cursor file atomically: a temporary file, then a rename over the old one.
    func saveCursor(_ sink: String, _ position: Position) throws {
        let path = configuration.directory + "/cursors/" + sink
        let temporary = path + ".tmp"
        try performIO("cannot write cursor of \(sink)") {
            let fd = try fileSystem.open(temporary, flags: O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC)
            defer { fileSystem.close(fd) }
            try Array("\(position.segment) \(position.offset)\n".utf8).withUnsafeBytes {
                try fileSystem.writeAll(fd, $0, what: "cursor of \(sink)")
            }
        }
        try performIO("cannot save cursor of \(sink)") { try fileSystem.rename(temporary, to: path) }
    }
}
