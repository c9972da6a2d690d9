/// The one write loop every file writer here uses.
enum FileIO {
    /// Writes all of `bytes` to `fd`, continuing after short writes and EINTR.
    /// - Throws: `SinkError.io` naming `what` and the system's reason.
    static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, what: String) throws {
        try POSIXFileSystem().writeAll(fd, bytes, what: what)
    }
}
