import CZlib
import NIOCore

/// Streams gzip bodies (osquery `--logger_tls_compress`) through zlib as they arrive, so inflation
/// happens chunk by chunk instead of in one pass over a collected body, and stops at a limit.
///
/// Every member of a multi-member body is decoded (RFC 1952 allows concatenated members; a client
/// that compresses per batch and concatenates would otherwise lose all but the first). Anything after
/// the last member that is not another gzip member is refused, as is a body that ends mid-member.
final class GzipInflater {
    enum Failure: Error, Equatable, CustomStringConvertible {
        /// The inflated output passed the limit.
        case tooLarge
        /// Not gzip, a corrupt member, or garbage after the last member.
        case corrupt(String)
        /// The body ended inside a member.
        case truncated

        var description: String {
            switch self {
            case .tooLarge: return "inflated body too large"
            case .corrupt(let why): return why
            case .truncated: return "gzip body ends inside a member"
            }
        }
    }

    private let stream: UnsafeMutablePointer<z_stream>
    /// Input of the current member has been fed and its end not yet seen.
    private var inMember = false
    private(set) var membersDecoded = 0

    init() {
        stream = .allocate(capacity: 1)
        stream.initialize(to: z_stream())
        // 15 window bits + 16: gzip framing only (no zlib or raw deflate).
        _ = inflateInit2_(stream, 15 + 16, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size))
    }

    deinit {
        inflateEnd(stream)
        stream.deinitialize(count: 1)
        stream.deallocate()
    }

    /// Inflates one chunk of the body onto `output`.
    /// - Throws: `Failure.tooLarge` once `output` would pass `limit` bytes; `.corrupt` for bad data.
    func inflate(_ chunk: ByteBuffer, into output: inout ByteBuffer, limit: Int) throws(Failure) {
        guard chunk.readableBytes > 0 else { return }
        let result: Failure? = chunk.withUnsafeReadableBytes { input -> Failure? in
            stream.pointee.next_in = UnsafeMutablePointer(mutating: input.bindMemory(to: Bytef.self).baseAddress)
            stream.pointee.avail_in = uInt(input.count)
            defer {
                stream.pointee.next_in = nil
                stream.pointee.avail_in = 0
            }
            while stream.pointee.avail_in > 0 {
                if !inMember {
                    if membersDecoded > 0 { inflateReset(stream) }
                    inMember = true
                }
                let room = min(64 << 10, limit - output.readableBytes + 1)
                guard room > 0 else { return .tooLarge }
                var code: Int32 = Z_OK
                var produced = 0
                let availableBefore = stream.pointee.avail_in
                output.writeWithUnsafeMutableBytes(minimumWritableBytes: room) { target in
                    stream.pointee.next_out = target.bindMemory(to: Bytef.self).baseAddress
                    stream.pointee.avail_out = uInt(room)
                    code = CZlib.inflate(stream, Z_NO_FLUSH)
                    produced = room - Int(stream.pointee.avail_out)
                    stream.pointee.next_out = nil
                    stream.pointee.avail_out = 0
                    return produced
                }
                if output.readableBytes > limit { return .tooLarge }
                switch code {
                case Z_STREAM_END:
                    inMember = false
                    membersDecoded += 1
                case Z_OK, Z_BUF_ERROR:
                    if produced == 0 && stream.pointee.avail_in == availableBefore {
                        return .corrupt("gzip stream makes no progress")
                    }
                default:
                    return .corrupt(membersDecoded > 0 ? "data after the last gzip member is not gzip" : "not a valid gzip stream")
                }
            }
            return nil
        }
        if let result { throw result }
    }

    /// Checks that the body ended between members.
    func finish() throws(Failure) {
        if inMember || membersDecoded == 0 { throw .truncated }
    }
}
