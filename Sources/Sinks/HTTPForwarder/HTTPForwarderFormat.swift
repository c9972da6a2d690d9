import Foundation
import NIOCore
import Support

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
    /// Confluent REST Proxy v2, POSTed to the topic's URL (`/topics/NAME`):
    /// `{"records":[{"key":"<node id>","value":<record>},...]}`.
    case kafkaREST = "kafka_rest"
    /// OpenTelemetry logs over HTTP/JSON, POSTed to a collector's `/v1/logs`: one log record per
    /// record, its JSON as the body's string value.
    case otlp

    /// The `Content-Type` of the request body.
    var contentType: String {
        switch self {
        case .ndjson, .elasticsearchBulk: return "application/x-ndjson"
        case .kafkaREST: return "application/vnd.kafka.json.v2+json"
        case .splunkHEC, .clickhouse, .otlp: return "application/json"
        }
    }

    /// The request body for `batch`.
    func encode(_ batch: [LogRecord], index: String?) -> ByteBuffer {
        var body = ByteBuffer()
        body.reserveCapacity(batch.reduce(0) { $0 + $1.json.readableBytes + 128 })
        switch self {
        case .kafkaREST:
            Self.writeKafkaREST(batch, into: &body)
            return body
        case .otlp:
            body.reserveCapacity(batch.reduce(0) { $0 + $1.json.readableBytes * 2 + 600 })
            Self.writeOTLP(batch, into: &body)
            return body
        case .ndjson, .splunkHEC, .elasticsearchBulk, .clickhouse:
            break
        }
        for record in batch {
            switch self {
            case .ndjson:
                body.writeImmutableBuffer(record.json)
            case .splunkHEC:
                body.writeString("{\"time\":\(Int(record.receivedAt.timeIntervalSince1970)),\"host\":\(JSONString.quoted(record.hostIdentifier)),")
                body.writeString("\"source\":\"osquery\",\"sourcetype\":\"osquery:\(record.kind.rawValue)\",\"event\":")
                body.writeImmutableBuffer(record.json)
                body.writeString("}")
            case .elasticsearchBulk:
                body.writeString("{\"index\":{\"_index\":\(JSONString.quoted(index ?? "osquery-\(record.kind.rawValue)"))}}\n")
                body.writeImmutableBuffer(record.json)
            case .clickhouse:
                body.writeString("{\"received_at\":\(Int(record.receivedAt.timeIntervalSince1970)),\"node\":\(JSONString.quoted(record.nodeID)),")
                body.writeString("\"log_type\":\"\(record.kind.rawValue)\",\"name\":\(JSONString.quoted(record.queryName ?? "")),")
                body.writeString("\"host_identifier\":\(JSONString.quoted(record.hostIdentifier)),\"record\":")
                Self.writeEscaped(record.json, into: &body)
                body.writeString("}")
            case .kafkaREST, .otlp:
                break
            }
            body.writeInteger(UInt8(ascii: "\n"))
        }
        return body
    }

    /// `bytes` (a record's JSON) as a JSON string literal, for formats that carry the record as text.
    static func writeEscaped(_ bytes: ByteBuffer, into body: inout ByteBuffer) {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.readableBytes + 16)
        JSONString.write(utf8: bytes.readableBytesView, to: &out)
        body.writeBytes(out)
    }
}
