#if canImport(Glibc)
import Glibc
#endif
import CZstd

/// One zstd compression stream (libzstd's `ZSTD_CCtx`), producing a single frame.
///
/// Shared by the archive sink (one stream per file, flushed per batch) and the HTTP forwarder (one
/// frame per request body), so it belongs to neither. Not thread-safe: its owner serialises access.
final class ZstdCompressor: @unchecked Sendable {
    private let context: OpaquePointer
    private var output: [UInt8]

    init(level: Int32) throws {
        guard let context = ZSTD_createCCtx() else { throw SinkError.io("zstd: cannot create a compression context") }
        self.context = context
        output = [UInt8](repeating: 0, count: ZSTD_CStreamOutSize())
        try Self.check(ZSTD_CCtx_setParameter(context, ZSTD_c_compressionLevel, level))
        try Self.check(ZSTD_CCtx_setParameter(context, ZSTD_c_checksumFlag, 1))
    }

    deinit { ZSTD_freeCCtx(context) }

    /// Compresses `input`; with `.flush` every byte given so far becomes decodable, with `.end` the
    /// frame is finished. Compressed bytes go to `sink` as they are produced.
    func compress(_ input: UnsafeRawBufferPointer, mode: ZSTD_EndDirective, sink: (UnsafeRawBufferPointer) throws -> Void) throws {
        var inBuffer = ZSTD_inBuffer(src: input.baseAddress, size: input.count, pos: 0)
        try output.withUnsafeMutableBytes { out in
            while true {
                var outBuffer = ZSTD_outBuffer(dst: out.baseAddress, size: out.count, pos: 0)
                let remaining = try Self.check(ZSTD_compressStream2(context, &outBuffer, &inBuffer, mode))
                if outBuffer.pos > 0 { try sink(UnsafeRawBufferPointer(rebasing: out[0..<outBuffer.pos])) }
                let done = mode == ZSTD_e_continue ? inBuffer.pos == inBuffer.size : remaining == 0
                if done { return }
            }
        }
    }

    @discardableResult
    static func check(_ code: Int) throws -> Int {
        if ZSTD_isError(code) != 0 { throw SinkError.io("zstd: \(String(cString: ZSTD_getErrorName(code)))") }
        return code
    }
}
