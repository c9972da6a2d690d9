import Foundation
import NIOCore
import Support

/// The formats whose body is one JSON document for the whole batch rather than a line per record.
extension HTTPForwarderFormat {
    /// `{"records":[{"key":"<node id>","value":<record>},...]}`: the node id as the key, so one
    /// node's records go to one partition and keep their order.
    static func writeKafkaREST(_ batch: [LogRecord], into body: inout ByteBuffer) {
        body.writeString("{\"records\":[")
        for (i, record) in batch.enumerated() {
            body.writeString(i == 0 ? "{\"key\":" : ",{\"key\":")
            body.writeString(JSONString.quoted(record.nodeID))
            body.writeString(",\"value\":")
            body.writeImmutableBuffer(record.json)
            body.writeString("}")
        }
        body.writeString("]}")
    }

    /// One `resourceLogs` entry (`service.name` `osquery`), one scope (`osquery-gateway`), one log
    /// record per record: `timeUnixNano` and `observedTimeUnixNano` are when the gateway received
    /// it (the agent's own time stays in the record), the severity is the status record's (INFO 9,
    /// WARN 13, ERROR 17, FATAL 21; INFO for results), the body is the record's JSON as a string, and
    /// the attributes are `host.name` and `osquery.host_identifier` (both the host identifier),
    /// `osquery.log_type`, `osquery.name` (when there is one) and `osquery.node_id`.
    static func writeOTLP(_ batch: [LogRecord], into body: inout ByteBuffer) {
        body.writeString(#"{"resourceLogs":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"osquery"}}]},"#)
        body.writeString(#""scopeLogs":[{"scope":{"name":"osquery-gateway"},"logRecords":["#)
        for (i, record) in batch.enumerated() {
            if i > 0 { body.writeString(",") }
            let time = unixNanoseconds(record.receivedAt)
            let (number, text) = otlpSeverity(of: record)
            body.writeString("{\"timeUnixNano\":\"\(time)\",\"observedTimeUnixNano\":\"\(time)\",")
            body.writeString("\"severityNumber\":\(number),\"severityText\":\"\(text)\",\"body\":{\"stringValue\":")
            writeEscaped(record.json, into: &body)
            body.writeString("},\"attributes\":[")
            var attributes = [
                ("host.name", record.hostIdentifier), ("osquery.host_identifier", record.hostIdentifier),
                ("osquery.log_type", record.kind.rawValue),
            ]
            if let name = record.queryName { attributes.append(("osquery.name", name)) }
            attributes.append(("osquery.node_id", record.nodeID))
            for (j, (key, value)) in attributes.enumerated() {
                body.writeString(j == 0 ? "{\"key\":\"" : ",{\"key\":\"")
                body.writeString(key)
                body.writeString("\",\"value\":{\"stringValue\":")
                body.writeString(JSONString.quoted(value))
                body.writeString("}}")
            }
            body.writeString("]}")
        }
        body.writeString("]}]}]}")
    }

    /// OTLP's severity number and text for a record: a status record's severity (0 INFO, 1 WARNING,
    /// 2 ERROR, 3 FATAL), INFO for everything else.
    static func otlpSeverity(of record: LogRecord) -> (number: Int, text: String) {
        guard record.kind == .status, let severity = record.severity else { return (9, "INFO") }
        switch severity {
        case ...0: return (9, "INFO")
        case 1: return (13, "WARN")
        case 2: return (17, "ERROR")
        default: return (21, "FATAL")
        }
    }

    /// `date` in whole nanoseconds since 1970 (microsecond-exact: a `Date` holds no more).
    static func unixNanoseconds(_ date: Date) -> Int64 {
        let interval = date.timeIntervalSince1970
        let seconds = interval.rounded(.down)
        let micros = min(999_999, max(0, Int64(((interval - seconds) * 1_000_000).rounded())))
        return Int64(seconds) * 1_000_000_000 + micros * 1_000
    }

    /// For a 2xx answer: why it still means some records were not taken, or nil.
    ///
    /// The Kafka REST Proxy answers 200 with one `offsets` entry per record, and an entry whose
    /// `error_code` is set (1: not retriable, 2: retriable, per Confluent) was not written to Kafka.
    /// Any such entry makes the whole batch a retry, whatever its code: only the failed records
    /// cannot be sent again with their order kept, and a retriable failure must not end in the
    /// dead-letter file. Delivery is at least once, so records Kafka took in a failed batch arrive
    /// twice.
    func failure(inAccepted answer: ByteBuffer) -> String? {
        guard self == .kafkaREST, answer.readableBytes > 0 else { return nil }
        guard let object = try? JSONSerialization.jsonObject(with: Data(answer.readableBytesView)) as? [String: Any],
            let offsets = object["offsets"] as? [[String: Any]]
        else { return nil }
        let failed = offsets.filter { entry in
            guard let code = entry["error_code"] else { return false }
            return !(code is NSNull)
        }
        guard let first = failed.first else { return nil }
        let message = (first["error"] as? String) ?? "error_code \(first["error_code"].map { "\($0)" } ?? "")"
        return "Kafka REST: \(failed.count) of \(offsets.count) records not written: \(message)"
    }
}
