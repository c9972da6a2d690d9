#if canImport(Glibc)
import Glibc
#endif
import CZstd

/// Decompresses as much of a (possibly unfinished) zstd stream as can be decoded: what a crash left
/// in a `.partial` archive. Everything written up to the last flush is recovered.
enum ZstdSalvage {
    static func decompress(_ data: [UInt8]) -> [UInt8] {
        guard let context = ZSTD_createDCtx() else { return [] }
        defer { ZSTD_freeDCtx(context) }
        var result: [UInt8] = []
        var output = [UInt8](repeating: 0, count: ZSTD_DStreamOutSize())
        data.withUnsafeBytes { input in
            var inBuffer = ZSTD_inBuffer(src: input.baseAddress, size: input.count, pos: 0)
            output.withUnsafeMutableBytes { out in
                while inBuffer.pos < inBuffer.size {
                    var outBuffer = ZSTD_outBuffer(dst: out.baseAddress, size: out.count, pos: 0)
                    let code = ZSTD_decompressStream(context, &outBuffer, &inBuffer)
                    result.append(contentsOf: out[0..<outBuffer.pos])
                    if ZSTD_isError(code) != 0 { return }
                    if outBuffer.pos == 0 && code != 0 && inBuffer.pos == inBuffer.size { return }
                }
                // Drain what the decoder still holds.
                while true {
                    var outBuffer = ZSTD_outBuffer(dst: out.baseAddress, size: out.count, pos: 0)
                    let code = ZSTD_decompressStream(context, &outBuffer, &inBuffer)
                    result.append(contentsOf: out[0..<outBuffer.pos])
                    if ZSTD_isError(code) != 0 || outBuffer.pos == 0 { return }
                }
            }
        }
        return result
    }
}
