#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NIOCore
import NIOConcurrencyHelpers
import NIOPosix

/// Writes records as JSON lines in osquery's filesystem-logger layout.
///
/// Files in `directory` (mode 0600, append-only):
/// - `osqueryd.results.log`: differential results;
/// - `osqueryd.snapshots.log`: snapshot results (`action: "snapshot"`);
/// - `osqueryd.INFO`, `osqueryd.WARNING`, `osqueryd.ERROR`: status lines by severity (FATAL goes to ERROR);
/// - `osqueryd.distributed.log`: distributed query answers (osquery itself does not log these).
///
/// Every line is the record's JSON exactly as the agent sent it. `write(_:)` returns after the lines
/// are written and fsynced; concurrent writers share fsyncs through `GroupCommit`.
///
/// Rotation: a file past `maxFileSize`, or older than `rotateEvery`, is renamed to `<name>.1` (older
/// ones shift to `.2`, `.3`, ...; more than `keep` are deleted) and a new file is started. `reopen()`
/// (SIGHUP) closes every file so the next write reopens it, for external rotation tools.
public final class FileSink: Sink {
    /// What a file sink needs; validated when the gateway configuration is read.
    public struct Configuration: Sendable {
        /// The sink's name in logs and metrics.
        public var name: String
        /// Folder for the log files; created if missing.
        public var directory: String
        /// Rotate a file once it passes this many bytes (nil: never).
        public var maxFileSize: Int?
        /// Rotate a file this long after it was started (nil: never).
        public var rotateEvery: Duration?
        /// Rotated files kept per log file.
        public var keep: Int

        public init(name: String, directory: String, maxFileSize: Int? = nil, rotateEvery: Duration? = nil, keep: Int = 10) {
            self.name = name
            self.directory = directory
            self.maxFileSize = maxFileSize
            self.rotateEvery = rotateEvery
            self.keep = keep
        }
    }

    private struct OpenFile {
        var fd: Int32
        var size: Int
        var openedAt: ContinuousClock.Instant
    }

    private struct OpenFiles {
        var descriptors: [String: OpenFile] = [:]
        var dirty: Set<Int32> = []
        var written: UInt64 = 0
        var directoryNeedsSync = false
    }

    /// The sink's configuration.
    public let configuration: Configuration
    public var name: String { configuration.name }
    private let files = NIOLockedValueBox(OpenFiles())
    private let commit: GroupCommit

    /// Opens (creating if needed) the sink's folder.
    /// - Throws: `SinkError.io` when the folder cannot be created.
    public init(configuration: Configuration) throws {
        self.configuration = configuration
        try Directory.make(configuration.directory)
        let files = self.files
        let directory = configuration.directory
        self.commit = GroupCommit {
            let (dirty, syncDirectory) = files.withLockedValue { state in
                defer {
                    state.dirty.removeAll()
                    state.directoryNeedsSync = false
                }
                return (state.dirty, state.directoryNeedsSync)
            }
            for fd in dirty where fdatasync(fd) != 0 {
                files.withLockedValue { _ = $0.dirty.insert(fd) }
                throw SinkError.io("fsync failed in \(directory): \(String(cString: strerror(errno)))")
            }
            if syncDirectory { try Directory.sync(directory) }
        }
    }

    /// The files of the layout, indexed by `fileIndex(for:)`.
    static let fileNames = [
        "osqueryd.results.log", "osqueryd.snapshots.log", "osqueryd.distributed.log",
        "osqueryd.INFO", "osqueryd.WARNING", "osqueryd.ERROR",
    ]

    /// The file a record belongs in, relative to the sink's folder.
    public static func fileName(for record: LogRecord) -> String { fileNames[fileIndex(for: record)] }

    static func fileIndex(for record: LogRecord) -> Int {
        switch record.kind {
        case .result: return record.isSnapshot ? 1 : 0
        case .distributed: return 2
        case .status:
            switch record.severity ?? 0 {
            case ...0: return 3
            case 1: return 4
            default: return 5
            }
        }
    }

    /// Large batches: each delivery ends with an fsync, so fewer, bigger ones write faster.
    public var batching: Batching { Batching(maxRecords: 100_000, maxBytes: 32 << 20) }

    public func deliver(_ batch: [LogRecord]) async -> DeliveryOutcome {
        do {
            try await write(batch)
            return .delivered
        } catch {
            return .retry(reason: "\(error)", after: nil)
        }
    }

    public func healthCheck() async throws {
        guard access(configuration.directory, W_OK) == 0 else {
            throw SinkError.io("cannot write to \(configuration.directory)")
        }
    }

    public func tick() async {
        guard let rotateEvery = configuration.rotateEvery else { return }
        files.withLockedValue { state in
            for (name, file) in state.descriptors where file.size > 0 && ContinuousClock.now - file.openedAt >= rotateEvery {
                rotate(name, &state)
            }
        }
    }

    /// Closes every file; the next write opens them again (SIGHUP, after external rotation).
    public func reopen() {
        files.withLockedValue { state in
            for file in state.descriptors.values {
                _ = fsync(file.fd)
                _ = Glibc.close(file.fd)
            }
            state.descriptors.removeAll()
            state.dirty.removeAll()
        }
    }

    /// Appends `records`, one line each, and returns once they are durable.
    /// - Throws: `SinkError.io` on any write, open or fsync failure.
    public func write(_ records: [LogRecord]) async throws {
        // One buffer per file of the layout; nearly every batch fills just one of them.
        var buffers = [ByteBuffer?](repeating: nil, count: Self.fileNames.count)
        for record in records {
            let index = Self.fileIndex(for: record)
            if buffers[index] == nil {
                buffers[index] = ByteBuffer()
                buffers[index]!.reserveCapacity(records.reduce(0) { $0 + $1.json.readableBytes + 1 })
            }
            buffers[index]!.writeImmutableBuffer(record.json)
            buffers[index]!.writeInteger(UInt8(ascii: "\n"))
        }
        let files = buffers.enumerated().compactMap { index, buffer in buffer.map { (Self.fileNames[index], $0) } }
        let sequence = try await NIOThreadPool.singleton.runIfActive { [self] in
            try self.writeLocked(files)
        }
        try await commit.waitUntilDurable(sequence)
    }

    /// Closes every open file.
    public func close() async {
        reopen()
    }

    /// Writes a batch's share of every file, or none of it: a failed write (ENOSPC, EIO) truncates
    /// each file this batch touched back to its size before the batch, so a retry appends whole lines
    /// once, never after a torn fragment or a copy already written to another file.
    private func writeLocked(_ buffers: [(String, ByteBuffer)]) throws -> UInt64 {
        try files.withLockedValue { state in
            var touched: [(name: String, fd: Int32, sizeBefore: Int)] = []
            do {
                for (name, buffer) in buffers {
                    if let maxFileSize = configuration.maxFileSize, let open = state.descriptors[name],
                        open.size > 0, open.size + buffer.readableBytes > maxFileSize
                    {
                        rotate(name, &state)
                    }
                    let fd = try descriptor(for: name, in: &state)
                    touched.append((name, fd, state.descriptors[name]?.size ?? 0))
                    try buffer.withUnsafeReadableBytes { try FileIO.writeAll(fd, $0, what: name) }
                    state.dirty.insert(fd)
                    state.descriptors[name]?.size += buffer.readableBytes
                }
            } catch {
                for file in touched {
                    _ = ftruncate(file.fd, off_t(file.sizeBefore))
                    state.descriptors[file.name]?.size = file.sizeBefore
                }
                throw error
            }
            state.written += 1
            return state.written
        }
    }

    /// Closes `name`, shifts `name.1 ... name.keep` up by one and renames `name` to `name.1`.
    private func rotate(_ name: String, _ state: inout OpenFiles) {
        guard let open = state.descriptors.removeValue(forKey: name) else { return }
        _ = fsync(open.fd)
        _ = Glibc.close(open.fd)
        state.dirty.remove(open.fd)
        let base = configuration.directory + "/" + name
        unlink(base + ".\(configuration.keep)")
        if configuration.keep > 1 {
            for index in stride(from: configuration.keep - 1, through: 1, by: -1) {
                rename(base + ".\(index)", base + ".\(index + 1)")
            }
        }
        if configuration.keep > 0 { rename(base, base + ".1") } else { unlink(base) }
        state.directoryNeedsSync = true
    }

    private func descriptor(for name: String, in state: inout OpenFiles) throws -> Int32 {
        if let open = state.descriptors[name] { return open.fd }
        let path = configuration.directory + "/" + name
        let existed = access(path, F_OK) == 0
        let fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw SinkError.io("cannot open \(path): \(String(cString: strerror(errno)))")
        }
        var info = stat()
        let size = fstat(fd, &info) == 0 ? Int(info.st_size) : 0
        state.descriptors[name] = OpenFile(fd: fd, size: size, openedAt: .now)
        if !existed { state.directoryNeedsSync = true }
        return fd
    }
}
