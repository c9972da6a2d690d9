#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The real file system: each call is the system call of the same name, retried on EINTR.
struct POSIXFileSystem: SpoolFileSystem {
    func open(_ path: String, flags: Int32) throws -> Int32 {
        let fd = systemOpen(path, flags)
        guard fd >= 0 else { throw SystemCallError(errno) }
        return fd
    }

    func close(_ fd: Int32) {
        _ = systemClose(fd)
    }

    func write(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) throws -> Int {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return 0 }
        while true {
            let n = systemWrite(fd, base, bytes.count)
            if n >= 0 { return n }
            if errno != EINTR { throw SystemCallError(errno) }
        }
    }

    func pread(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer, at offset: Int) throws -> Int {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return 0 }
        while true {
            let n = systemPread(fd, base, buffer.count, off_t(offset))
            if n >= 0 { return n }
            if errno != EINTR { throw SystemCallError(errno) }
        }
    }

    func fsync(_ fd: Int32) throws {
        guard systemFsync(fd) == 0 else { throw SystemCallError(errno) }
    }

    func ftruncate(_ fd: Int32, to length: Int) throws {
        guard systemFtruncate(fd, off_t(length)) == 0 else { throw SystemCallError(errno) }
    }

    func rename(_ path: String, to newPath: String) throws {
        guard systemRename(path, newPath) == 0 else { throw SystemCallError(errno) }
    }

    func unlink(_ path: String) throws {
        guard systemUnlink(path) == 0 else { throw SystemCallError(errno) }
    }

    func contentsOfDirectory(_ path: String) throws -> [String] {
        guard let directory = opendir(path) else { throw SystemCallError(errno) }
        defer { closedir(directory) }
        var names: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    func makeDirectory(_ path: String) throws {
        try Directory.make(path)
    }

    func syncDirectory(_ path: String) throws {
        try Directory.sync(path)
    }
}

// The system calls under names of their own: inside `POSIXFileSystem` the plain names are its methods.

private func systemOpen(_ path: String, _ flags: Int32) -> Int32 { open(path, flags, 0o600) }
private func systemClose(_ fd: Int32) -> Int32 { close(fd) }
private func systemWrite(_ fd: Int32, _ bytes: UnsafeRawPointer, _ count: Int) -> Int { write(fd, bytes, count) }
private func systemPread(_ fd: Int32, _ buffer: UnsafeMutableRawPointer, _ count: Int, _ offset: off_t) -> Int {
    pread(fd, buffer, count, offset)
}
private func systemFsync(_ fd: Int32) -> Int32 { fsync(fd) }
private func systemFtruncate(_ fd: Int32, _ length: off_t) -> Int32 { ftruncate(fd, length) }
private func systemRename(_ path: String, _ newPath: String) -> Int32 { rename(path, newPath) }
private func systemUnlink(_ path: String) -> Int32 { unlink(path) }
