import Foundation
import HTTPTypes
import NIOCore
@testable import Sinks
import Testing

func firehoseSink(stream: String, endpoint: String?) throws -> FirehoseSink {
    var configuration = FirehoseSink.Configuration(name: "hose", deliveryStream: stream, connection: Moto.connection(endpoint))
    configuration.batching = Batching(maxRecords: 500, maxBytes: 3 << 20, maxWait: .milliseconds(50))
    configuration.recordBackoff = Backoff(base: .milliseconds(10), cap: .milliseconds(50))
    return try FirehoseSink(configuration: configuration)
}

/// The Firehose sink against moto's Firehose, whose DirectPut stream writes each call's records to
/// an S3 bucket: the objects there are the lines agents sent, each ending in a newline.
@Suite(.enabled(if: Moto.isAvailable, "needs MOTO_URL (make test starts moto)"))
struct FirehoseSinkTests {
    func deliveryStream() async throws -> (stream: String, bucket: String) {
        let bucket = Moto.name("hose")
        let stream = Moto.name("osquery")
        try await Moto.createBucket(bucket)
        try await Moto.createDeliveryStream(stream, bucket: bucket, prefix: "logs/")
        return (stream, bucket)
    }

    @Test func oneCallsObjectIsTheBatchLineForLine() async throws {
        let (stream, bucket) = try await deliveryStream()
        let sink = try firehoseSink(stream: stream, endpoint: Moto.url)
        var batch = (0..<300).map { record($0, node: $0 % 2 == 0 ? "a" : "b") }
        batch[7].json = ByteBuffer(string: #"{"id":7,"text":"é \"q\" \n"}"#)
        #expect(await sink.deliver(batch) == .delivered)
        await sink.close()
        let objects = try await Moto.objects(in: bucket, prefix: "logs/")
        #expect(objects.count == 1)
        let body = try await Moto.object(objects[0].key, in: bucket)
        #expect(String(buffer: body) == batch.map { String(buffer: $0.json) + "\n" }.joined())
    }

    @Test func everyLineThroughThePipelineArrives() async throws {
        let (stream, bucket) = try await deliveryStream()
        var expected: [String] = []
        try await withPipeline([.init(sink: try firehoseSink(stream: stream, endpoint: Moto.url))]) { pipeline in
            for batch in 0..<5 {
                for node in ["a", "b"] {
                    let records = (0..<40).map { record(batch * 40 + $0, node: node) }
                    expected += records.map { String(buffer: $0.json) }
                    try await pipeline.append(records)
                }
            }
            #expect(await eventually { ((try? await Moto.lines(in: bucket, prefix: "logs/", compressed: false))?.count ?? 0) >= 400 })
        }
        let lines = try await Moto.lines(in: bucket, prefix: "logs/", compressed: false)
        // moto names objects by the second and a random id, so their order is not the calls' order.
        #expect(lines.count == 400)
        #expect(lines.sorted() == expected.sorted())
    }

    @Test func aRecordOverTheLimitIsDeadLetteredAloneAndTheRestOfItsBatchArrives() async throws {
        let (stream, bucket) = try await deliveryStream()
        let directory = temporaryDirectory("firehose-oversized")
        // 1,024,000 bytes and its newline: one over Firehose's record limit.
        var huge = record(2)
        huge.json = ByteBuffer(string: "{\"id\":2,\"pad\":\"" + String(repeating: "x", count: 1_024_000 - 17) + "\"}")
        let batch = [record(0), record(1), huge, record(3)]
        try await withPipeline([.init(sink: try firehoseSink(stream: stream, endpoint: Moto.url))], directory: directory) { pipeline in
            try await pipeline.append(batch)
            #expect(await eventually { ((try? await Moto.lines(in: bucket, prefix: "logs/", compressed: false))?.count ?? 0) >= 3 })
            #expect(await eventually { !deadLetters(directory + "/deadletter/hose.jsonl").isEmpty })
        }
        #expect(huge.json.readableBytes == 1_024_000)
        #expect(deadLetters(directory + "/deadletter/hose.jsonl") == [
            DeadLetter(sink: "hose", reason: "record 3 of the batch is 1024001 bytes, over the 1024000-byte limit of a Firehose record",
                       record: String(buffer: huge.json)),
        ])
        #expect(try await Moto.lines(in: bucket, prefix: "logs/", compressed: false).sorted()
            == [0, 1, 3].map { String(buffer: record($0).json) }.sorted())
    }
}

/// The Firehose sink's calls against a stub failing some records, and refusing a call.
@Suite struct FirehoseSinkProtocolTests {
    static func lines(of request: AWSStub.Seen) -> [String] {
        (request.json["Records"] as? [[String: Any]] ?? []).map { entry in
            String(decoding: Data(base64Encoded: entry["Data"] as? String ?? "") ?? Data(), as: UTF8.self)
        }
    }

    @Test func onlyTheFailedRecordsAreSentAgain() async throws {
        let stub = AWSStub()
        try await stub.start { index, _ in
            index == 0
                ? .init(body: #"{"FailedPutCount":1,"Encrypted":false,"RequestResponses":[{"RecordId":"r1"},"#
                    + #"{"ErrorCode":"ServiceUnavailableException","ErrorMessage":"busy"},{"RecordId":"r3"}]}"#)
                : .init(body: #"{"FailedPutCount":0,"Encrypted":false,"RequestResponses":[{"RecordId":"r4"}]}"#)
        }
        let sink = try firehoseSink(stream: "osquery", endpoint: stub.url)
        let batch = [record(0), record(1), record(2)]
        #expect(await sink.deliver(batch) == .delivered)
        await sink.close()
        await stub.stop()
        let seen = stub.seen
        #expect(seen.count == 2)
        #expect(Self.lines(of: seen[0]) == batch.map { String(buffer: $0.json) + "\n" })
        #expect(Self.lines(of: seen[1]) == [String(buffer: batch[1].json) + "\n"])
        for request in seen {
            #expect(request.json["DeliveryStreamName"] as? String == "osquery")
            #expect(request.header("X-Amz-Target") == "Firehose_20150804.PutRecordBatch")
            #expect(request.header("Authorization")?.contains("/us-east-1/firehose/aws4_request, ") == true)
        }
    }

    @Test func anInvalidArgumentGoesToTheDeadLetterFile() async throws {
        let stub = AWSStub()
        try await stub.start { _, request in
            // The worker's health check (DescribeDeliveryStream) passes; every put is refused.
            request.header("X-Amz-Target") == "Firehose_20150804.PutRecordBatch"
                ? .init(status: .badRequest, body: #"{"__type":"InvalidArgumentException","message":"bad record"}"#)
                : .init(body: "{}")
        }
        let directory = temporaryDirectory("firehose-reject")
        try await withPipeline([.init(sink: try firehoseSink(stream: "osquery", endpoint: stub.url))], directory: directory) { pipeline in
            try await pipeline.append((0..<3).map { record($0) })
            #expect(await eventually { FileManager.default.fileExists(atPath: directory + "/deadletter/hose.jsonl") })
        }
        await stub.stop()
        let lines = try String(contentsOfFile: directory + "/deadletter/hose.jsonl", encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 3)
        #expect(lines[0].hasPrefix(#"{"sink":"hose","reason":"HTTP 400 InvalidArgumentException: bad record","rejected_at":"#))
        #expect(lines[2].hasSuffix(#","record":{"id":2,"node":"node-1"}}"#))
        // The refused call, then its halves until each record was refused alone: [0,1,2], [0], [1,2], [1], [2].
        let puts = stub.seen.filter { $0.header("X-Amz-Target") == "Firehose_20150804.PutRecordBatch" }
        #expect(puts.map { Self.lines(of: $0).count } == [3, 1, 2, 1, 1])
    }
}
