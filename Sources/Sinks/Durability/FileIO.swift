#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The one write loop every file writer here uses.
enum FileIO {
    /// Writes all of `bytes` to `fd`, continuing after short writes and EINTR.
    /// - Throws: `SinkError.io` naming `what` and the system's reason.
    static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, what: String) throws {
        var done = 0
        while done < bytes.count {
            let n = write(fd, bytes.baseAddress! + done, bytes.count - done)
            if n < 0 {
                if errno == EINTR { continue }
                throw SinkError.io("write to \(what) failed: \(String(cString: strerror(errno)))")
            }
            done += n
        }
    }
}
