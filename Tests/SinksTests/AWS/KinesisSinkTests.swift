import Foundation
import HTTPTypes
import NIOConcurrencyHelpers
import NIOCore
@testable import Sinks
import Support
import Testing

func kinesisSink(stream: String, endpoint: String?, attempts: Int = 5) throws -> KinesisSink {
    var configuration = KinesisSink.Configuration(name: "stream", stream: stream, connection: Moto.connection(endpoint))
    configuration.batching = Batching(maxRecords: 500, maxBytes: 4 << 20, maxWait: .milliseconds(50))
    configuration.recordAttempts = attempts
    configuration.recordBackoff = Backoff(base: .milliseconds(10), cap: .milliseconds(50))
    return try KinesisSink(configuration: configuration)
}

/// The Kinesis sink against moto's Kinesis: records read back (GetShardIterator, GetRecords) are the
/// lines agents sent, one record each, keyed by node; a rejected record; an outage.
@Suite(.enabled(if: Moto.isAvailable, "needs MOTO_URL (make test starts moto)"))
struct KinesisSinkTests {
    @Test func everyLineIsOneRecordKeyedByItsNode() async throws {
        let stream = Moto.name("osquery")
        try await Moto.createStream(stream)
        var expected: [String: [String]] = [:]
        try await withPipeline([.init(sink: try kinesisSink(stream: stream, endpoint: Moto.url))]) { pipeline in
            for batch in 0..<5 {
                for node in ["a", "b"] {
                    var records = (0..<20).map { record(batch * 20 + $0, node: node) }
                    records[0].json = ByteBuffer(string: #"{"id":\#(batch * 20),"node":"\#(node)","text":"é \"q\" \n"}"#)
                    expected[node, default: []] += records.map { String(buffer: $0.json) }
                    try await pipeline.append(records)
                }
            }
            #expect(await eventually { ((try? await Moto.records(in: stream))?.count ?? 0) >= 200 })
        }
        let records = try await Moto.records(in: stream)
        #expect(records.count == 200)
        for node in ["a", "b"] {
            #expect(records.filter { $0.key == node }.map { $0.data } == expected[node]!)
        }
    }

    @Test func aRecordOverTheLimitIsDeadLetteredAloneAndTheRestOfItsBatchArrives() async throws {
        let stream = Moto.name("osquery")
        try await Moto.createStream(stream)
        let directory = temporaryDirectory("kinesis-reject")
        var huge = record(1)
        huge.json = ByteBuffer(string: "{\"id\":1,\"pad\":\"" + String(repeating: "x", count: 1 << 20) + "\"}")
        let batch = [record(0), huge, record(2), record(3)]
        try await withPipeline([.init(sink: try kinesisSink(stream: stream, endpoint: Moto.url))], directory: directory) { pipeline in
            // One append: one batch (the sink waits 50 ms for more and takes 4 MiB).
            try await pipeline.append(batch)
            #expect(await eventually { !deadLetters(directory + "/deadletter/stream.jsonl").isEmpty })
            #expect(await eventually { ((try? await Moto.records(in: stream))?.count ?? 0) >= 3 })
            try await pipeline.append([record(4)])
            #expect(await eventually { ((try? await Moto.records(in: stream))?.count ?? 0) >= 4 })
        }
        #expect(deadLetters(directory + "/deadletter/stream.jsonl") == [
            DeadLetter(sink: "stream", reason: "record 2 of the batch is 1048599 bytes, over the 1048576-byte limit of a Kinesis record",
                       record: String(buffer: huge.json)),
        ])
        #expect(try await Moto.records(in: stream).map { $0.data } == [0, 2, 3, 4].map { String(buffer: record($0).json) })
    }

    @Test func anOutageLosesNothingAndKeepsOrderPerNode() async throws {
        let port = freePort()
        let endpoint = "http://127.0.0.1:\(port)"
        let stream = Moto.name("osquery")
        var expected: [String: [String]] = [:]
        var moto: MotoProcess?
        defer { moto?.stop() }
        try await withPipeline([.init(sink: try kinesisSink(stream: stream, endpoint: endpoint))]) { pipeline in
            for batch in 0..<10 {
                for node in ["a", "b", "c"] {
                    let records = (0..<5).map { record(batch * 5 + $0, node: node) }
                    expected[node, default: []] += records.map { String(buffer: $0.json) }
                    try await pipeline.append(records)
                }
            }
            try? await Task.sleep(for: .milliseconds(500))
            // Up, without the stream at first (ResourceNotFoundException is retried), then with it.
            let started = try MotoProcess(port: port)
            moto = started
            #expect(await started.ready())
            try? await Task.sleep(for: .milliseconds(300))
            try await Moto.createStream(stream, endpoint: endpoint)
            #expect(await eventually(timeout: .seconds(30)) { ((try? await Moto.records(in: stream, endpoint: endpoint))?.count ?? 0) >= 150 })
        }
        let records = try await Moto.records(in: stream, endpoint: endpoint)
        #expect(records.count == 150)
        for node in ["a", "b", "c"] {
            #expect(records.filter { $0.key == node }.map { $0.data } == expected[node]!)
        }
    }
}

/// The Kinesis sink's calls against a stub that fails some records of a call, as Kinesis does under
/// throttling (moto never does).
@Suite struct KinesisSinkProtocolTests {
    static func records(of request: AWSStub.Seen) -> [(data: String, key: String)] {
        (request.json["Records"] as? [[String: Any]] ?? []).map { entry in
            let data = Data(base64Encoded: entry["Data"] as? String ?? "") ?? Data()
            return (data: String(decoding: data, as: UTF8.self), key: entry["PartitionKey"] as? String ?? "")
        }
    }

    @Test func onlyTheFailedRecordsAreSentAgain() async throws {
        let stub = AWSStub()
        try await stub.start { index, _ in
            index == 0
                ? .init(body: #"{"FailedRecordCount":2,"Records":[{"SequenceNumber":"1","ShardId":"s"},"#
                    + #"{"ErrorCode":"ProvisionedThroughputExceededException","ErrorMessage":"slow down"},"#
                    + #"{"SequenceNumber":"2","ShardId":"s"},{"ErrorCode":"InternalFailure","ErrorMessage":"oops"}]}"#)
                : .init(body: #"{"FailedRecordCount":0,"Records":[{"SequenceNumber":"3","ShardId":"s"},{"SequenceNumber":"4","ShardId":"s"}]}"#)
        }
        let sink = try kinesisSink(stream: "osquery", endpoint: stub.url)
        let batch = [record(0, node: "a"), record(1, node: "b"), record(2, node: "a"), record(3, node: "c")]
        #expect(await sink.deliver(batch) == .delivered)
        await sink.close()
        await stub.stop()
        let seen = stub.seen
        #expect(seen.count == 2)
        #expect(Self.records(of: seen[0]).map { $0.data } == batch.map { String(buffer: $0.json) })
        #expect(Self.records(of: seen[0]).map { $0.key } == ["a", "b", "a", "c"])
        #expect(Self.records(of: seen[1]).map { $0.data } == [String(buffer: batch[1].json), String(buffer: batch[3].json)])
        #expect(Self.records(of: seen[1]).map { $0.key } == ["b", "c"])
        for request in seen {
            #expect(request.method == "POST" && request.path == "/")
            #expect(request.json["StreamName"] as? String == "osquery")
            #expect(request.header("X-Amz-Target") == "Kinesis_20131202.PutRecords")
            #expect(request.header("Content-Type") == "application/x-amz-json-1.1")
            #expect(request.header("Authorization")?.contains("/us-east-1/kinesis/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-target, ") == true)
        }
    }

    @Test func recordsThatKeepFailingMakeTheBatchRetry() async throws {
        let stub = AWSStub()
        try await stub.start { _, _ in
            .init(body: #"{"FailedRecordCount":1,"Records":[{"ErrorCode":"ProvisionedThroughputExceededException","ErrorMessage":"slow down"}]}"#)
        }
        let sink = try kinesisSink(stream: "osquery", endpoint: stub.url, attempts: 3)
        let outcome = await sink.deliver([record(0)])
        #expect(outcome == .retry(reason: "Kinesis: 1 of 1 records failed (ProvisionedThroughputExceededException: slow down)", after: nil))
        await sink.close()
        await stub.stop()
        #expect(stub.seen.count == 3)
    }

    @Test func aCallRefusedForOneRecordIsHalvedUntilOnlyThatRecordIsDeadLettered() async throws {
        let stub = AWSStub()
        try await stub.start { _, request in
            // A validation error for any call carrying record 5; every other call is stored whole.
            let records = KinesisSinkProtocolTests.records(of: request)
            if records.contains(where: { $0.data.hasPrefix(#"{"id":5,"#) }) {
                return .init(status: .badRequest, body: #"{"__type":"ValidationException","message":"bad record"}"#)
            }
            let entries = records.indices.map { #"{"SequenceNumber":"\#($0)","ShardId":"s"}"# }
            return .init(body: #"{"FailedRecordCount":0,"Records":["# + entries.joined(separator: ",") + "]}")
        }
        let sink = try kinesisSink(stream: "osquery", endpoint: stub.url)
        let batch = (0..<8).map { record($0) }
        #expect(await sink.deliver(batch) == .partlyRejected(indices: [5], reason: "HTTP 400 ValidationException: bad record"))
        await sink.close()
        await stub.stop()
        let calls = stub.seen.map { request in Self.records(of: request).map { $0.data } }
        func lines(_ ids: [Int]) -> [String] { ids.map { String(buffer: record($0).json) } }
        // 0-7 refused; 0-3 stored; 4-7 refused; 4-5 refused; 4 stored; 5 refused alone; 6-7 stored.
        #expect(calls == [lines(Array(0..<8)), lines([0, 1, 2, 3]), lines([4, 5, 6, 7]), lines([4, 5]), lines([4]), lines([5]), lines([6, 7])])
    }

    @Test func aRefusalOfEveryCallStopsHalvingAfterTheBudget() async throws {
        let stub = AWSStub()
        try await stub.start { _, _ in
            .init(status: .badRequest, body: #"{"__type":"ValidationException","message":"stream name invalid"}"#)
        }
        let sink = try kinesisSink(stream: "osquery", endpoint: stub.url)
        #expect(await sink.deliver((0..<500).map { record($0) }) == .rejected(reason: "HTTP 400 ValidationException: stream name invalid"))
        await sink.close()
        await stub.stop()
        #expect(stub.seen.count == 1 + AWSRecordPut.isolatingCalls)
    }

    @Test func aValidationErrorRejectsAndThrottlingRetries() async throws {
        let stub = AWSStub()
        try await stub.start { index, _ in
            index == 0
                ? .init(status: .badRequest, body: #"{"__type":"ValidationException","message":"1 validation error"}"#)
                : .init(status: .badRequest, body: #"{"__type":"ThrottlingException","message":"Rate exceeded"}"#)
        }
        let sink = try kinesisSink(stream: "osquery", endpoint: stub.url)
        #expect(await sink.deliver([record(0)]) == .rejected(reason: "HTTP 400 ValidationException: 1 validation error"))
        #expect(await sink.deliver([record(0)]) == .retry(reason: "HTTP 400 ThrottlingException: Rate exceeded", after: nil))
        await sink.close()
        await stub.stop()
    }
}
