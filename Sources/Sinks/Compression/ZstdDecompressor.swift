#if canImport(Glibc)
import Glibc
#endif
import CZstd

/// One zstd decompression stream (libzstd's `ZSTD_DCtx`) over one or more concatenated frames,
/// pulled one output buffer at a time.
///
/// Public because the gateway's carve downloads decompress osquery's `--carver_compression`
/// archives with it, and only this module links libzstd. Pull-based so that the caller can write
/// each piece (at most `ZSTD_DStreamOutSize()`, about 128 KiB) before asking for the next: a small
/// upload that expands enormously never sits in memory whole. Not thread-safe: its owner
/// serialises access.
///
/// ```swift
/// let decompressor = try ZstdDecompressor()
/// decompressor.feed(chunk)
/// while let piece = try decompressor.next() { write(piece) }
/// try decompressor.finish()   // after the last chunk: throws if it stopped inside a frame
/// ```
public final class ZstdDecompressor {
    private let context: OpaquePointer
    private var output: [UInt8]
    private var input: [UInt8] = []
    /// How much of `input` the decoder has read.
    private var position = 0
    /// The last call filled the output buffer, so the decoder may hold more.
    private var outputPending = false
    /// Whether everything decoded so far ends exactly where a frame ends.
    private var atFrameEnd = true

    /// - Throws: `SinkError.io` when libzstd cannot allocate a context.
    public init() throws {
        guard let context = ZSTD_createDCtx() else { throw SinkError.io("zstd: cannot create a decompression context") }
        self.context = context
        output = [UInt8](repeating: 0, count: ZSTD_DStreamOutSize())
    }

    deinit { ZSTD_freeDCtx(context) }

    /// Adds compressed bytes; call `next()` until it returns nil before feeding more.
    public func feed(_ bytes: some Sequence<UInt8>) {
        if position == input.count {
            input.removeAll(keepingCapacity: true)
            position = 0
        }
        input.append(contentsOf: bytes)
    }

    /// The next piece of decompressed bytes (possibly empty while a frame header is read), or nil
    /// once everything fed so far is decoded.
    /// - Throws: `SinkError.io` for data that is not zstd or is corrupt.
    public func next() throws -> [UInt8]? {
        guard position < input.count || outputPending else { return nil }
        let start = position
        var produced: [UInt8] = []
        try input.withUnsafeBytes { raw in
            var inBuffer = ZSTD_inBuffer(src: raw.baseAddress, size: raw.count, pos: start)
            try output.withUnsafeMutableBytes { out in
                var outBuffer = ZSTD_outBuffer(dst: out.baseAddress, size: out.count, pos: 0)
                let code = ZSTD_decompressStream(context, &outBuffer, &inBuffer)
                if ZSTD_isError(code) != 0 { throw SinkError.io("zstd: \(String(cString: ZSTD_getErrorName(code)))") }
                // 0: a frame is complete and flushed. A call that made no progress says nothing new.
                if code == 0 {
                    atFrameEnd = true
                } else if inBuffer.pos > start || outBuffer.pos > 0 {
                    atFrameEnd = false
                }
                outputPending = outBuffer.pos == outBuffer.size
                position = inBuffer.pos
                produced = Array(out[0..<outBuffer.pos])
            }
        }
        // No progress at all: nothing more can come out of what was fed.
        if position == start && produced.isEmpty {
            outputPending = false
            position = input.count
            return nil
        }
        return produced
    }

    /// Checks that the data fed ended on a frame boundary; call after the last `next()` returned nil.
    /// - Throws: `SinkError.io` when it stopped inside a frame (a truncated file).
    public func finish() throws {
        guard atFrameEnd else { throw SinkError.io("zstd: the data ends inside a frame (truncated)") }
    }
}
