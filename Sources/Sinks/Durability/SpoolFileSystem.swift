#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NIOCore

/// Every file-system call the spool makes, in one place, so a test can make any of them fail the way
/// a disk does (a short write, ENOSPC, EIO from fsync, an unlink that never happens) and check what
/// the spool promises still holds. Production uses `POSIXFileSystem`.
///
/// Calls are the system calls themselves, one each: a `write` may write fewer bytes than given, and
/// it is the caller's job to go on (see `writeAll`). A failure throws (usually `SystemCallError`).
protocol SpoolFileSystem: Sendable {
    /// Opens `path` with `flags` (`O_…`); a file it creates gets mode 0600.
    func open(_ path: String, flags: Int32) throws -> Int32
    /// Closes `fd`. Nothing useful can be done when that fails, so it does not throw.
    func close(_ fd: Int32)
    /// One write(2): the number of bytes written, which may be fewer than `bytes.count`.
    func write(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) throws -> Int
    /// One pread(2) at `offset`: the number of bytes read, 0 at the end of the file.
    func pread(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer, at offset: Int) throws -> Int
    /// fsync(2). After a failure the written data must be treated as lost, never synced again as if
    /// it were safe: Linux may already have dropped the pages it could not write.
    func fsync(_ fd: Int32) throws
    /// ftruncate(2).
    func ftruncate(_ fd: Int32, to length: Int) throws
    /// rename(2): replaces `newPath` atomically.
    func rename(_ path: String, to newPath: String) throws
    /// unlink(2).
    func unlink(_ path: String) throws
    /// The names in folder `path`, without `.` and `..`.
    func contentsOfDirectory(_ path: String) throws -> [String]
    /// Creates `path` and any missing parent (mode 0700); an existing folder is fine.
    func makeDirectory(_ path: String) throws
    /// Makes the entries of folder `path` (files created, renamed or deleted in it) durable.
    func syncDirectory(_ path: String) throws
}

/// A system call that failed, with the system's error number (`ENOSPC`, `EIO`, ...).
struct SystemCallError: Error, Equatable, CustomStringConvertible {
    var code: Int32

    init(_ code: Int32) {
        self.code = code
    }

    /// The system's reason, as strerror(3) words it.
    var description: String { String(cString: strerror(code)) }
}

extension SpoolFileSystem {
    /// Writes all of `bytes` to `fd`, going on after short writes.
    /// - Throws: `SinkError.io` naming `what` and the system's reason.
    func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, what: String) throws {
        var done = 0
        while done < bytes.count {
            let n: Int
            do {
                n = try self.write(fd, UnsafeRawBufferPointer(rebasing: bytes[done...]))
            } catch {
                throw SinkError.io("write to \(what) failed: \(error)")
            }
            // write(2) returns 0 only for an empty request; anything else would loop for ever.
            guard n > 0 else { throw SinkError.io("write to \(what) failed: no progress") }
            done += n
        }
    }

    /// Up to `length` bytes of `path` from `offset`: fewer only where the file ends.
    func read(_ path: String, offset: Int, length: Int) throws -> ByteBuffer {
        let fd = try self.open(path, flags: O_RDONLY | O_CLOEXEC)
        defer { self.close(fd) }
        var buffer = ByteBuffer()
        buffer.reserveCapacity(length)
        var done = 0
        while done < length {
            let n = try buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: length - done) { target in
                try self.pread(fd, into: UnsafeMutableRawBufferPointer(rebasing: target[..<(length - done)]), at: offset + done)
            }
            if n == 0 { break }
            done += n
        }
        return buffer
    }

    /// All of `path`.
    func readFile(_ path: String) throws -> ByteBuffer {
        let fd = try self.open(path, flags: O_RDONLY | O_CLOEXEC)
        defer { self.close(fd) }
        var buffer = ByteBuffer()
        var offset = 0
        while true {
            let n = try buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: 1 << 16) { target in
                try self.pread(fd, into: target, at: offset)
            }
            if n == 0 { return buffer }
            offset += n
        }
    }

    /// Cuts `path` to `length` bytes.
    func truncate(_ path: String, to length: Int) throws {
        let fd = try self.open(path, flags: O_WRONLY | O_CLOEXEC)
        defer { self.close(fd) }
        try self.ftruncate(fd, to: length)
    }
}

/// Runs a file-system call and reports its failure as `SinkError.io("<what>: <reason>")`, the error the
/// gateway answers with a 503 (the agent keeps its batch). A `SinkError` passes through unchanged.
func performIO<T>(_ what: @autoclosure () -> String, _ call: () throws -> T) throws -> T {
    do {
        return try call()
    } catch let error as SinkError {
        throw error
    } catch {
        throw SinkError.io("\(what()): \(error)")
    }
}
