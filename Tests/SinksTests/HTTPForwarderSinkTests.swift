import Foundation
import HTTPTypes
import NIOConcurrencyHelpers
import NIOCore
@testable import Sinks
import Support
import Testing

/// The forwarder against a real HTTP receiver: retries, rejections, Retry-After, formats, outages.
@Suite struct HTTPForwarderSinkTests {
    func forwarder(_ url: String, format: HTTPForwarderFormat = .ndjson, maxWait: Duration = .zero) throws -> HTTPForwarderSink {
        var configuration = HTTPForwarderSink.Configuration(name: "siem", url: url)
        configuration.format = format
        configuration.batching = Batching(maxRecords: 1_000, maxBytes: 4 << 20, maxWait: maxWait)
        configuration.endpoint.requestTimeout = .seconds(5)
        return try HTTPForwarderSink(configuration: configuration)
    }

    @Test func failuresThenSuccessGiveNPlusOneAttemptsAndOneDelivery() async throws {
        let receiver = HTTPReceiver()
        try await receiver.start { index in index < 3 ? ([.serviceUnavailable, .tooManyRequests, .requestTimeout][index], [:]) : (.ok, [:]) }
        let sink = try forwarder(receiver.url)
        let directory = temporaryDirectory("forward")
        try await withPipeline([.init(sink: sink)], directory: directory) { pipeline in
            try await pipeline.append((0..<5).map { record($0) })
            #expect(await eventually { FileManager.default.fileExists(atPath: directory + "/spool/cursors/siem") && receiver.count == 4 })
            try? await Task.sleep(for: .milliseconds(200))
        }
        #expect(receiver.count == 4)
        let bodies = receiver.received.withLockedValue { $0.map(\.body) }
        #expect(Set(bodies).count == 1, "the same batch every time")
        #expect(receiver.lines == Array(repeating: (0..<5).map { String(buffer: record($0).json) }, count: 4).flatMap { $0 })
        await receiver.stop()
    }

    @Test func badRequestGoesToTheDeadLetterFileWithoutRetry() async throws {
        let receiver = HTTPReceiver()
        try await receiver.start { _ in (.badRequest, [:]) }
        let directory = temporaryDirectory("forward")
        try await withPipeline([.init(sink: try forwarder(receiver.url))], directory: directory) { pipeline in
            try await pipeline.append((0..<3).map { record($0) })
            #expect(await eventually { FileManager.default.fileExists(atPath: directory + "/deadletter/siem.jsonl") })
            try? await Task.sleep(for: .milliseconds(300))
        }
        #expect(receiver.count == 1)
        let lines = try String(contentsOfFile: directory + "/deadletter/siem.jsonl", encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 3)
        #expect(lines[0].hasPrefix(#"{"sink":"siem","reason":"HTTP 400: {\"status\":400}","rejected_at":"#))
        #expect(lines[0].hasSuffix(#","record":{"id":0,"node":"node-1"}}"#))
        await receiver.stop()
    }

    @Test func retryAfterIsHonoured() async throws {
        let receiver = HTTPReceiver()
        try await receiver.start { index in index == 0 ? (.serviceUnavailable, [.retryAfter: "1"]) : (.ok, [:]) }
        try await withPipeline([.init(sink: try forwarder(receiver.url))]) { pipeline in
            try await pipeline.append([record(1)])
            #expect(await eventually { receiver.count == 2 })
        }
        let times = receiver.received.withLockedValue { $0.map(\.at) }
        #expect(times[1] - times[0] >= .milliseconds(950))
        #expect(HTTPForwarderSink.retryAfter("120") == .seconds(120))
        #expect(HTTPForwarderSink.retryAfter("Wed, 21 Oct 2015 07:28:00 GMT") == .zero)
        await receiver.stop()
    }

    @Test func aSinkOutageLosesNothingKeepsPerNodeOrderAndNeverPausesTheFileSink() async throws {
        let port = freePort()
        let receiver = HTTPReceiver()
        let directory = temporaryDirectory("outage")
        let files = try FileSink(configuration: .init(name: "files", directory: directory + "/logs"))
        let siem = try forwarder("http://127.0.0.1:\(port)/ingest", maxWait: .milliseconds(50))
        var expected: [String: [String]] = [:]
        try await withPipeline([.init(sink: files), .init(sink: siem)], directory: directory) { pipeline in
            // The receiver is down (connection refused) while three nodes log.
            for batch in 0..<10 {
                for node in ["a", "b", "c"] {
                    let records = (0..<5).map { record(batch * 5 + $0, node: node) }
                    expected[node, default: []] += records.map { String(buffer: $0.json) }
                    try await pipeline.append(records)
                }
            }
            // The file sink is not held back by the dead one.
            let fileLines = { (try? String(contentsOfFile: directory + "/logs/osqueryd.results.log", encoding: .utf8))?.split(separator: "\n").count ?? 0 }
            #expect(await eventually(timeout: .seconds(5)) { fileLines() == 150 })
            #expect(receiver.count == 0)
            // Back up: everything arrives.
            try await receiver.start(port: port)
            #expect(await eventually { receiver.lines.count >= 150 })
        }
        // At least once: a batch whose answer came too late (a loaded machine) is sent again, so a
        // line may arrive twice; its first arrivals are every line, in each node's order.
        let lines = receiver.lines
        #expect(lines.count >= 150)
        for node in ["a", "b", "c"] {
            var seen = Set<String>()
            let first = lines.filter { $0.contains("\"node\":\"\(node)\"") && seen.insert($0).inserted }
            #expect(first == expected[node]!)
        }
        await receiver.stop()
    }

    @Test(arguments: HTTPForwarderFormat.allCases)
    func formatsEncodeEveryRecord(_ format: HTTPForwarderFormat) throws {
        var quoted = record(7)
        quoted.json = ByteBuffer(string: #"{"id":7,"msg":"a \"b\" \\ c"}"#)
        let body = String(buffer: format.encode([record(1), quoted], index: nil))
        let lines = body.split(separator: "\n").map(String.init)
        switch format {
        case .ndjson:
            #expect(lines == [#"{"id":1,"node":"node-1"}"#, #"{"id":7,"msg":"a \"b\" \\ c"}"#])
        case .splunkHEC:
            #expect(lines.count == 2)
            #expect(lines[0].contains(#""host":"host-node-1","source":"osquery","sourcetype":"osquery:result","event":{"id":1,"node":"node-1"}}"#))
        case .elasticsearchBulk:
            #expect(lines == [#"{"index":{"_index":"osquery-result"}}"#, #"{"id":1,"node":"node-1"}"#,
                              #"{"index":{"_index":"osquery-result"}}"#, #"{"id":7,"msg":"a \"b\" \\ c"}"#])
        case .clickhouse:
            #expect(lines[1].contains(#""log_type":"result","name":"pack_test_q","host_identifier":"host-node-1","record":"{\"id\":7,\"msg\":\"a \\\"b\\\" \\\\ c\"}"}"#))
        case .kafkaREST:
            #expect(lines == [#"{"records":[{"key":"node-1","value":{"id":1,"node":"node-1"}},{"key":"node-1","value":{"id":7,"msg":"a \"b\" \\ c"}}]}"#])
        case .otlp:
            #expect(lines.count == 1)
            #expect(lines[0].contains(#""body":{"stringValue":"{\"id\":7,\"msg\":\"a \\\"b\\\" \\\\ c\"}"}"#))
        }
        for line in lines { #expect((try? JSONSerialization.jsonObject(with: Data(line.utf8))) != nil, "\(line)") }
    }
}
