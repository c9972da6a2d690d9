import struct Foundation.Date
import NIOCore

/// How one `LogRecord` is laid out in a spool segment.
///
/// Frame: `u32 payload length | u32 CRC-32C of the payload | payload`, little-endian.
/// Payload (version 1):
/// `u8 version | u8 kind | u8 flags | i64 receivedAt (ms) | i32 severity | str nodeID |
///  str hostIdentifier | str secretName | str queryName | str platform | bytes json`
/// where `str` and `bytes` are `u32 length | bytes`, and flags say which optional fields are present
/// (bit 0 snapshot, 1 severity, 2 secretName, 3 queryName, 4 platform).
enum SpoolFrame {
    static let headerSize = 8
    static let version: UInt8 = 1
    /// A frame larger than this is corruption, not data (osquery lines are at most 1 MiB by default).
    static let maxPayload = 256 << 20

    /// Appends `record`'s frame to `buffer`.
    static func encode(_ record: LogRecord, into buffer: inout ByteBuffer) {
        let lengthIndex = buffer.writerIndex
        buffer.writeInteger(UInt32(0), endianness: .little)
        buffer.writeInteger(UInt32(0), endianness: .little)
        let payloadStart = buffer.writerIndex
        buffer.writeInteger(version)
        buffer.writeInteger(kindCode(record.kind))
        var flags: UInt8 = record.isSnapshot ? 1 : 0
        if record.severity != nil { flags |= 2 }
        if record.secretName != nil { flags |= 4 }
        if record.queryName != nil { flags |= 8 }
        if record.platform != nil { flags |= 16 }
        buffer.writeInteger(flags)
        buffer.writeInteger(Int64(record.receivedAt.timeIntervalSince1970 * 1000), endianness: .little)
        buffer.writeInteger(Int32(truncatingIfNeeded: record.severity ?? 0), endianness: .little)
        for text in [record.nodeID, record.hostIdentifier, record.secretName ?? "", record.queryName ?? "", record.platform ?? ""] {
            buffer.writeInteger(UInt32(text.utf8.count), endianness: .little)
            buffer.writeString(text)
        }
        buffer.writeInteger(UInt32(record.json.readableBytes), endianness: .little)
        buffer.writeImmutableBuffer(record.json)
        let payloadLength = buffer.writerIndex - payloadStart
        let crc = buffer.withUnsafeReadableBytes { raw in
            CRC32C.checksum(UnsafeRawBufferPointer(rebasing: raw[(payloadStart - buffer.readerIndex)...]))
        }
        buffer.setInteger(UInt32(payloadLength), at: lengthIndex, endianness: .little)
        buffer.setInteger(crc, at: lengthIndex + 4, endianness: .little)
    }

    enum DecodeResult {
        /// A whole, valid frame of `length` bytes.
        case record(LogRecord, length: Int)
        /// The buffer ends inside a frame (a torn tail, or more to read).
        case incomplete
        /// The frame's checksum or structure is wrong.
        case corrupt(String)
    }

    /// Decodes the frame at the start of `bytes`.
    static func decode(_ bytes: ByteBuffer) -> DecodeResult {
        var view = bytes
        guard let length = view.readInteger(endianness: .little, as: UInt32.self),
            let crc = view.readInteger(endianness: .little, as: UInt32.self)
        else { return .incomplete }
        guard Int(length) <= maxPayload, length > 0 else { return .corrupt("frame length \(length) is impossible") }
        guard view.readableBytes >= Int(length) else { return .incomplete }
        var payload = view.readSlice(length: Int(length))!
        let actual = payload.withUnsafeReadableBytes { CRC32C.checksum($0) }
        guard actual == crc else { return .corrupt("checksum mismatch") }
        guard payload.readInteger(as: UInt8.self) == version,
            let kindValue = payload.readInteger(as: UInt8.self), let kind = kind(kindValue),
            let flags = payload.readInteger(as: UInt8.self),
            let millis = payload.readInteger(endianness: .little, as: Int64.self),
            let severity = payload.readInteger(endianness: .little, as: Int32.self),
            let nodeID = readString(&payload), let host = readString(&payload), let secret = readString(&payload),
            let query = readString(&payload), let platform = readString(&payload),
            let jsonLength = payload.readInteger(endianness: .little, as: UInt32.self),
            let json = payload.readSlice(length: Int(jsonLength))
        else { return .corrupt("payload is malformed") }
        let record = LogRecord(
            kind: kind, nodeID: nodeID, hostIdentifier: host,
            secretName: flags & 4 != 0 ? secret : nil, queryName: flags & 8 != 0 ? query : nil,
            platform: flags & 16 != 0 ? platform : nil, isSnapshot: flags & 1 != 0,
            severity: flags & 2 != 0 ? Int(severity) : nil,
            receivedAt: Date(timeIntervalSince1970: Double(millis) / 1000), json: json)
        return .record(record, length: headerSize + Int(length))
    }

    private static func readString(_ buffer: inout ByteBuffer) -> String? {
        guard let length = buffer.readInteger(endianness: .little, as: UInt32.self) else { return nil }
        return buffer.readString(length: Int(length))
    }

    private static func kindCode(_ kind: LogKind) -> UInt8 {
        switch kind {
        case .result: return 0
        case .status: return 1
        case .distributed: return 2
        }
    }

    private static func kind(_ code: UInt8) -> LogKind? {
        switch code {
        case 0: return .result
        case 1: return .status
        case 2: return .distributed
        default: return nil
        }
    }
}
