import NIOConcurrencyHelpers
@testable import Sinks

/// The real file system with the failures of a real disk, switched on and off by a test. Faults hit
/// segment files (`.seg`) only, so cursors and folders keep working and each test isolates one fault.
final class FaultInjectingFileSystem: SpoolFileSystem {
    enum Fault: Sendable {
        /// Every write to a segment writes at most this many bytes, and succeeds.
        case shortWrites(bytes: Int)
        /// Writes to segments let `after` more bytes through (a short write), then fail with `code`.
        case writeFails(Int32, after: Int)
        /// Like `writeFails`, and cutting a segment back fails too (the disk turned read-only).
        case tornWrite(Int32, after: Int)
        /// fsync of a segment fails with `code` (nothing is synced): EIO from writeback.
        case fsyncFails(Int32)
        /// Deleting a segment fails with `code` and leaves it on disk: a crash before the unlink.
        case unlinkFails(Int32)
    }

    private struct State {
        var fault: Fault?
        /// Calls the fault would hit that still go through before it starts.
        var passes = 0
        /// Failures still to inject before the fault switches itself off.
        var remaining = Int.max
        var injected = 0
        var paths: [Int32: String] = [:]

        /// Whether this call fails: false while passes are left or once the fault is used up.
        mutating func take() -> Bool {
            guard remaining > 0 else { return false }
            if passes > 0 {
                passes -= 1
                return false
            }
            remaining -= 1
            injected += 1
            return true
        }
    }

    private let real = POSIXFileSystem()
    private let state = NIOLockedValueBox(State())

    /// Switches `fault` on for later calls: the first `passes` calls it would hit go through, then it
    /// fails `times` calls. nil switches every fault off.
    func inject(_ fault: Fault?, passes: Int = 0, times: Int = .max) {
        state.withLockedValue { state in
            state.fault = fault
            state.passes = passes
            state.remaining = times
        }
    }

    /// How many calls a fault failed or cut short.
    var injected: Int { state.withLockedValue { $0.injected } }

    private static func isSegment(_ path: String?) -> Bool {
        path?.hasSuffix(".seg") == true
    }

    func open(_ path: String, flags: Int32) throws -> Int32 {
        let fd = try real.open(path, flags: flags)
        state.withLockedValue { $0.paths[fd] = path }
        return fd
    }

    func close(_ fd: Int32) {
        state.withLockedValue { $0.paths[fd] = nil }
        real.close(fd)
    }

    func write(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) throws -> Int {
        let allowed = try state.withLockedValue { state throws -> Int in
            guard Self.isSegment(state.paths[fd]) else { return bytes.count }
            switch state.fault {
            case .shortWrites(let limit)? where limit < bytes.count:
                return state.take() ? limit : bytes.count
            case .writeFails(let code, let after)?, .tornWrite(let code, let after)?:
                if after > 0 {
                    let count = min(after, bytes.count)
                    state.fault = state.fault?.allowing(after - count)
                    return count
                }
                guard state.take() else { return bytes.count }
                throw SystemCallError(code)
            default:
                return bytes.count
            }
        }
        return try real.write(fd, UnsafeRawBufferPointer(rebasing: bytes[..<allowed]))
    }

    func pread(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer, at offset: Int) throws -> Int {
        try real.pread(fd, into: buffer, at: offset)
    }

    func fsync(_ fd: Int32) throws {
        let failure = state.withLockedValue { state -> Int32? in
            guard case .fsyncFails(let code)? = state.fault, Self.isSegment(state.paths[fd]), state.take() else { return nil }
            return code
        }
        if let failure { throw SystemCallError(failure) }
        try real.fsync(fd)
    }

    func ftruncate(_ fd: Int32, to length: Int) throws {
        let failure = state.withLockedValue { state -> Int32? in
            guard case .tornWrite(let code, _)? = state.fault, Self.isSegment(state.paths[fd]), state.take() else { return nil }
            return code
        }
        if let failure { throw SystemCallError(failure) }
        try real.ftruncate(fd, to: length)
    }

    func rename(_ path: String, to newPath: String) throws {
        try real.rename(path, to: newPath)
    }

    func unlink(_ path: String) throws {
        let failure = state.withLockedValue { state -> Int32? in
            guard case .unlinkFails(let code)? = state.fault, Self.isSegment(path), state.take() else { return nil }
            return code
        }
        if let failure { throw SystemCallError(failure) }
        try real.unlink(path)
    }

    func contentsOfDirectory(_ path: String) throws -> [String] {
        try real.contentsOfDirectory(path)
    }

    func makeDirectory(_ path: String) throws {
        try real.makeDirectory(path)
    }

    func syncDirectory(_ path: String) throws {
        try real.syncDirectory(path)
    }
}

extension FaultInjectingFileSystem.Fault {
    /// The same write fault with `bytes` still let through.
    fileprivate func allowing(_ bytes: Int) -> Self {
        switch self {
        case .writeFails(let code, _): .writeFails(code, after: bytes)
        case .tornWrite(let code, _): .tornWrite(code, after: bytes)
        default: self
        }
    }
}
