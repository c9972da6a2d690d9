import Foundation
import NIOConcurrencyHelpers
import Support
import HTTPTypes
import NIOCore
@testable import Sinks
import Testing

/// `kafka_rest` and `otlp`: the exact bodies and content types a real HTTP receiver gets, and a Kafka
/// REST answer that reports failed records.
@Suite struct HTTPForwarderDocumentFormatTests {
    func forwarder(_ url: String, format: HTTPForwarderFormat) throws -> HTTPForwarderSink {
        var configuration = HTTPForwarderSink.Configuration(name: "docs", url: url)
        configuration.format = format
        configuration.endpoint.requestTimeout = .seconds(5)
        return try HTTPForwarderSink(configuration: configuration)
    }

    /// A result record of node-1 and an ERROR status record of node-2 whose host identifier needs escaping.
    var records: [LogRecord] {
        var result = record(1)
        result.receivedAt = Date(timeIntervalSince1970: 1_700_000_000.25)
        let status = LogRecord(kind: .status, nodeID: "node-2", hostIdentifier: #"web "1""#, severity: 2,
                               receivedAt: Date(timeIntervalSince1970: 1_700_000_001.5), json: ByteBuffer(string: #"{"s":"a\\b"}"#))
        return [result, status]
    }

    @Test func kafkaRESTPostsRecordsKeyedByNodeAndRetriesWhenAnOffsetCarriesAnError() async throws {
        let receiver = HTTPReceiver()
        try await receiver.start(answer: { index in
            index == 0
                ? #"{"key_schema_id":null,"value_schema_id":null,"offsets":[{"partition":0,"offset":7,"error_code":null,"error":null},{"partition":null,"offset":null,"error_code":2,"error":"Leader not available"}]}"#
                : #"{"key_schema_id":null,"value_schema_id":null,"offsets":[{"partition":0,"offset":8,"error_code":null,"error":null},{"partition":1,"offset":3,"error_code":null,"error":null}]}"#
        })
        let sink = try forwarder(receiver.url, format: .kafkaREST)
        #expect(await sink.deliver(records) == .retry(reason: "Kafka REST: 1 of 2 records not written: Leader not available", after: nil))
        #expect(await sink.deliver(records) == .delivered)
        let received = receiver.received.withLockedValue { $0 }
        #expect(received.count == 2)
        #expect(received[0].headers[.contentType] == "application/vnd.kafka.json.v2+json")
        #expect(received[0].body == #"{"records":[{"key":"node-1","value":{"id":1,"node":"node-1"}},{"key":"node-2","value":{"s":"a\\b"}}]}"#)
        #expect(received[1].body == received[0].body)
        await sink.close()
        await receiver.stop()
    }

    @Test func otlpPostsOneLogRecordPerRecordWithSeverityAndAttributes() async throws {
        let receiver = HTTPReceiver()
        try await receiver.start()
        let sink = try forwarder(receiver.url, format: .otlp)
        #expect(await sink.deliver(records) == .delivered)
        let received = try #require(receiver.received.withLockedValue { $0.first })
        #expect(received.headers[.contentType] == "application/json")
        let expected = #"{"resourceLogs":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"osquery"}}]},"#
            + #""scopeLogs":[{"scope":{"name":"osquery-gateway"},"logRecords":["#
            + #"{"timeUnixNano":"1700000000250000000","observedTimeUnixNano":"1700000000250000000","severityNumber":9,"severityText":"INFO","#
            + #""body":{"stringValue":"{\"id\":1,\"node\":\"node-1\"}"},"attributes":["#
            + #"{"key":"host.name","value":{"stringValue":"host-node-1"}},{"key":"osquery.host_identifier","value":{"stringValue":"host-node-1"}},"#
            + #"{"key":"osquery.log_type","value":{"stringValue":"result"}},{"key":"osquery.name","value":{"stringValue":"pack_test_q"}},"#
            + #"{"key":"osquery.node_id","value":{"stringValue":"node-1"}}]},"#
            + #"{"timeUnixNano":"1700000001500000000","observedTimeUnixNano":"1700000001500000000","severityNumber":17,"severityText":"ERROR","#
            + #""body":{"stringValue":"{\"s\":\"a\\\\b\"}"},"attributes":["#
            + #"{"key":"host.name","value":{"stringValue":"web \"1\""}},{"key":"osquery.host_identifier","value":{"stringValue":"web \"1\""}},"#
            + #"{"key":"osquery.log_type","value":{"stringValue":"status"}},{"key":"osquery.node_id","value":{"stringValue":"node-2"}}]}"#
            + #"]}]}]}"#
        #expect(received.body == expected)
        #expect((try? JSONSerialization.jsonObject(with: Data(received.body.utf8))) != nil)
        await sink.close()
        await receiver.stop()
    }

    @Test func otlpSeverityFollowsTheStatusSeverity() {
        func severity(_ record: LogRecord) -> String {
            let (number, text) = HTTPForwarderFormat.otlpSeverity(of: record)
            return "\(number) \(text)"
        }
        func status(_ severity: Int?) -> LogRecord {
            LogRecord(kind: .status, nodeID: "n", hostIdentifier: "h", severity: severity, json: ByteBuffer(string: "{}"))
        }
        #expect([0, 1, 2, 3, nil].map { severity(status($0)) } == ["9 INFO", "13 WARN", "17 ERROR", "21 FATAL", "9 INFO"])
        #expect(severity(record(1)) == "9 INFO")
    }
}
