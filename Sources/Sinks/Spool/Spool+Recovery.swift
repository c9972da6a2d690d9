#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NIOCore

/// Opening the spool: what is on disk becomes the state to start from (see "Recovery" in Spool.swift).
extension Spool {
    /// Scans every segment, truncating each at its first torn or corrupt frame, loads the cursors of
    /// `sinks`, and opens the newest segment (or the first one) for appending.
    /// - Returns: the state, and one line per repair made.
    /// - Throws: `SinkError.io` when the folder or a segment cannot be read or repaired.
    static func recover(_ configuration: Configuration, sinks: [String], fileSystem: any SpoolFileSystem) throws -> (State, [String]) {
        let directory = configuration.directory
        try performIO("cannot create \(directory)/cursors") { try fileSystem.makeDirectory(directory + "/cursors") }
        var state = State()
        var report: [String] = []
        let ids = try segmentIDs(in: directory, fileSystem)
        for id in ids {
            let path = Self.path(directory, id)
            let (validLength, problem) = try scan(path, fileSystem)
            if let problem {
                report.append("segment \(id): \(problem); truncated at byte \(validLength)")
                try performIO("cannot truncate \(path)") { try fileSystem.truncate(path, to: validLength) }
            }
            state.segments[id] = validLength
            state.totalBytes += validLength
        }
        let oldest = ids.first ?? 1
        let newest = ids.last ?? 1
        for sink in sinks {
            let cursor = loadCursor(sink, in: directory, fileSystem)
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
        let fd = try performIO("cannot open spool segment in \(directory)") {
            try fileSystem.open(Self.path(directory, newest), flags: O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC)
        }
        do {
            try performIO("cannot sync spool folder \(directory)") { try fileSystem.syncDirectory(directory) }
        } catch {
            fileSystem.close(fd)
            throw error
        }
        state.writeFD = fd
        state.durable = Position(segment: newest, offset: state.writeOffset)
        return (state, report)
    }

    static func segmentIDs(in directory: String, _ fileSystem: any SpoolFileSystem) throws -> [UInt64] {
        let names = try performIO("cannot list spool folder \(directory)") { try fileSystem.contentsOfDirectory(directory) }
        return names.compactMap { name in name.hasSuffix(".seg") ? UInt64(name.dropLast(4)) : nil }.sorted()
    }

    /// The length of the valid prefix of a segment, and what ended it early, if anything.
    static func scan(_ path: String, _ fileSystem: any SpoolFileSystem) throws -> (Int, String?) {
        var buffer = try performIO("cannot read \(path)") { try fileSystem.readFile(path) }
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
}
