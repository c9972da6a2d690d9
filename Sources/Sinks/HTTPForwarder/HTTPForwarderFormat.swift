import Foundation
import NIOCore

/// How a batch is laid out in a request body.
public enum HTTPForwarderFormat: String, Sendable, CaseIterable {
    /// One record JSON per line.
    case ndjson
    /// Splunk HTTP Event Collector: `{"time","host","source","sourcetype","event"}` per line.
    case splunkHEC = "splunk_hec"
    /// Elasticsearch `_bulk`: an `index` action line, then the record, per record.
    case elasticsearchBulk = "elasticsearch_bulk"
    /// ClickHouse `JSONEachRow` over its HTTP interface, flat columns plus the record as a string:
    /// `received_at` (UInt32 seconds), `node`, `log_type`, `name`, `host_identifier`, `record`.
    case clickhouse

    /// The request body for `batch`.
    func encode(_ batch: [LogRecord], index: String?) -> ByteBuffer {
        var body = ByteBuffer()
        body.reserveCapacity(batch.reduce(0) { $0 + $1.json.readableBytes + 128 })
        for record in batch {
            switch self {
            case .ndjson:
                body.writeImmutableBuffer(record.json)
            case .splunkHEC:
                body.writeString("{\"time\":\(Int(record.receivedAt.timeIntervalSince1970)),\"host\":\(jsonString(record.hostIdentifier)),")
                body.writeString("\"source\":\"osquery\",\"sourcetype\":\"osquery:\(record.kind.rawValue)\",\"event\":")
                body.writeImmutableBuffer(record.json)
                body.writeString("}")
            case .elasticsearchBulk:
                body.writeString("{\"index\":{\"_index\":\(jsonString(index ?? "osquery-\(record.kind.rawValue)"))}}\n")
                body.writeImmutableBuffer(record.json)
            case .clickhouse:
                body.writeString("{\"received_at\":\(Int(record.receivedAt.timeIntervalSince1970)),\"node\":\(jsonString(record.nodeID)),")
                body.writeString("\"log_type\":\"\(record.kind.rawValue)\",\"name\":\(jsonString(record.queryName ?? "")),")
                body.writeString("\"host_identifier\":\(jsonString(record.hostIdentifier)),\"record\":")
                Self.writeEscaped(record.json, into: &body)
                body.writeString("}")
            }
            body.writeInteger(UInt8(ascii: "\n"))
        }
        return body
    }

    /// `bytes` as the contents of a JSON string literal (quotes, backslashes and control bytes escaped,
    /// other bytes as they are).
    static func writeEscaped(_ bytes: ByteBuffer, into body: inout ByteBuffer) {
        body.writeInteger(UInt8(ascii: "\""))
        bytes.withUnsafeReadableBytes { raw in
            var start = 0
            for i in 0..<raw.count {
                let byte = raw[i]
                guard byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") || byte < 0x20 else { continue }
                body.writeBytes(UnsafeRawBufferPointer(rebasing: raw[start..<i]))
                switch byte {
                case UInt8(ascii: "\""): body.writeString("\\\"")
                case UInt8(ascii: "\\"): body.writeString("\\\\")
                case 0x0A: body.writeString("\\n")
                default: body.writeString(String(format: "\\u%04x", byte))
                }
                start = i + 1
            }
            body.writeBytes(UnsafeRawBufferPointer(rebasing: raw[start..<raw.count]))
        }
        body.writeInteger(UInt8(ascii: "\""))
    }
}
