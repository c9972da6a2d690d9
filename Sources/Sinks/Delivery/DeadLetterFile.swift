#if canImport(Glibc)
import Glibc
#endif
import Foundation
import NIOCore
import Support

/// Where records a sink refused for good go: one JSON line per record,
/// `{"sink":…,"reason":…,"rejected_at":…,"record":<the record's JSON>}`, fsynced before the cursor
/// moves past them, so nothing leaves the spool without landing somewhere.
struct DeadLetterFile: Sendable {
    let path: String

    func write(_ records: [LogRecord], sink: String, reason: String) throws {
        var buffer = ByteBuffer()
        let prefix = "{\"sink\":\(JSONString.quoted(sink)),\"reason\":\(JSONString.quoted(reason)),\"rejected_at\":\(Int(Date().timeIntervalSince1970)),\"record\":"
        for record in records {
            buffer.writeString(prefix)
            buffer.writeImmutableBuffer(record.json)
            buffer.writeString("}\n")
        }
        try Directory.make((path as NSString).deletingLastPathComponent)
        let fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw SinkError.io("cannot open dead-letter file \(path)") }
        defer { _ = close(fd) }
        try buffer.withUnsafeReadableBytes { try FileIO.writeAll(fd, $0, what: path) }
        guard fsync(fd) == 0 else { throw SinkError.io("dead-letter fsync failed") }
    }
}
