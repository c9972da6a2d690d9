import struct Foundation.Date
import NIOCore

/// How records are laid out in a spool segment: one frame per batch of records that share their
/// origin (one agent request), so the node's metadata is written once per request, not per line.
///
/// Frame: `u32 payload length | u32 CRC-32C of the payload | payload`, little-endian.
/// Payload (version 2):
/// `u8 version | u8 kind | u8 flags | i64 receivedAt (ms) | str nodeID | str hostIdentifier |
///  str secretName | str platform | u32 count | count × item`
/// item: `u8 flags | i32 severity | str queryName | bytes json`
/// where `str` and `bytes` are `u32 length | bytes`. Frame flags: bit 0 secretName present, bit 1
/// platform present, bit 2 passed through to the upstream backend (added without a version bump:
/// frames written before it have the bit clear, which is what they mean). Item flags: bit 0
/// snapshot, bit 1 severity present, bit 2 queryName present.
enum SpoolFrame {
    static let headerSize = 8
    static let version: UInt8 = 2
    /// A frame larger than this is corruption, not data (agents' bodies are capped well below).
    static let maxPayload = 1 << 30

    /// Appends frames for `records` to `buffer`: one frame per run of records with the same origin.
    static func encode(_ records: [LogRecord], into buffer: inout ByteBuffer) {
        var start = 0
        while start < records.count {
            var end = start + 1
            while end < records.count && sameOrigin(records[start], records[end]) { end += 1 }
            encodeFrame(records[start..<end], into: &buffer)
            start = end
        }
    }

    static func sameOrigin(_ a: LogRecord, _ b: LogRecord) -> Bool {
        a.kind == b.kind && a.receivedAt == b.receivedAt && a.nodeID == b.nodeID && a.hostIdentifier == b.hostIdentifier
            && a.secretName == b.secretName && a.platform == b.platform && a.passedThrough == b.passedThrough
    }

    private static func encodeFrame(_ records: ArraySlice<LogRecord>, into buffer: inout ByteBuffer) {
        let first = records.first!
        let lengthIndex = buffer.writerIndex
        buffer.writeInteger(UInt32(0), endianness: .little)
        buffer.writeInteger(UInt32(0), endianness: .little)
        let payloadStart = buffer.writerIndex
        buffer.writeInteger(version)
        buffer.writeInteger(kindCode(first.kind))
        buffer.writeInteger(UInt8((first.secretName != nil ? 1 : 0) | (first.platform != nil ? 2 : 0) | (first.passedThrough ? 4 : 0)))
        buffer.writeInteger(Int64((first.receivedAt.timeIntervalSince1970 * 1000).rounded()), endianness: .little)
        for text in [first.nodeID, first.hostIdentifier, first.secretName ?? "", first.platform ?? ""] {
            writeString(text, into: &buffer)
        }
        buffer.writeInteger(UInt32(records.count), endianness: .little)
        for record in records {
            var flags: UInt8 = record.isSnapshot ? 1 : 0
            if record.severity != nil { flags |= 2 }
            if record.queryName != nil { flags |= 4 }
            buffer.writeInteger(flags)
            buffer.writeInteger(Int32(truncatingIfNeeded: record.severity ?? 0), endianness: .little)
            writeString(record.queryName ?? "", into: &buffer)
            buffer.writeInteger(UInt32(record.json.readableBytes), endianness: .little)
            buffer.writeImmutableBuffer(record.json)
        }
        let payloadLength = buffer.writerIndex - payloadStart
        let crc = buffer.withUnsafeReadableBytes { raw in
            CRC32C.checksum(UnsafeRawBufferPointer(rebasing: raw[(payloadStart - buffer.readerIndex)...]))
        }
        buffer.setInteger(UInt32(payloadLength), at: lengthIndex, endianness: .little)
        buffer.setInteger(crc, at: lengthIndex + 4, endianness: .little)
    }

    private static func writeString(_ text: String, into buffer: inout ByteBuffer) {
        let lengthIndex = buffer.writerIndex
        buffer.writeInteger(UInt32(0), endianness: .little)
        let written = buffer.writeString(text)
        buffer.setInteger(UInt32(written), at: lengthIndex, endianness: .little)
    }

    enum DecodeResult {
        /// A whole, valid frame of `length` bytes and its records.
        case records([LogRecord], length: Int)
        /// The buffer ends inside a frame (a torn tail, or more to read).
        case incomplete
        /// The frame's checksum or structure is wrong.
        case corrupt(String)
    }

    /// Decodes the frame at the start of `bytes`. Record JSON stays a slice of `bytes` (no copy), and
    /// a batch's records share their origin's strings.
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
            let nodeID = readString(&payload), let host = readString(&payload), let secret = readString(&payload),
            let platform = readString(&payload),
            let count = payload.readInteger(endianness: .little, as: UInt32.self), Int(count) <= payload.readableBytes
        else { return .corrupt("payload is malformed") }
        let receivedAt = Date(timeIntervalSince1970: Double(millis) / 1000)
        var records: [LogRecord] = []
        records.reserveCapacity(Int(count))
        var previousName: (bytes: ByteBuffer, text: String)?
        for _ in 0..<count {
            guard let itemFlags = payload.readInteger(as: UInt8.self),
                let severity = payload.readInteger(endianness: .little, as: Int32.self),
                let nameLength = payload.readInteger(endianness: .little, as: UInt32.self),
                let nameBytes = payload.readSlice(length: Int(nameLength)),
                let jsonLength = payload.readInteger(endianness: .little, as: UInt32.self),
                let json = payload.readSlice(length: Int(jsonLength))
            else { return .corrupt("item is malformed") }
            // Consecutive lines of one query share its name: decode it once.
            let name: String
            if let previous = previousName, previous.bytes == nameBytes {
                name = previous.text
            } else {
                name = String(buffer: nameBytes)
                previousName = (nameBytes, name)
            }
            records.append(LogRecord(
                kind: kind, nodeID: nodeID, hostIdentifier: host,
                secretName: flags & 1 != 0 ? secret : nil, queryName: itemFlags & 4 != 0 ? name : nil,
                platform: flags & 2 != 0 ? platform : nil, isSnapshot: itemFlags & 1 != 0,
                severity: itemFlags & 2 != 0 ? Int(severity) : nil, receivedAt: receivedAt, json: json,
                passedThrough: flags & 4 != 0))
        }
        return .records(records, length: headerSize + Int(length))
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
