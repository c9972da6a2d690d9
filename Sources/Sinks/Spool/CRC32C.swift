import CCRC32C

/// CRC-32C (Castagnoli), the checksum of every spool frame: the SSE 4.2 instruction where the CPU
/// has it (the `CCRC32C` C target), a table elsewhere.
enum CRC32C {
    static func checksum(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
        ccrc32c_update(0, bytes.baseAddress, bytes.count)
    }

    static func checksum(_ bytes: [UInt8]) -> UInt32 {
        bytes.withUnsafeBytes { checksum($0) }
    }
}
