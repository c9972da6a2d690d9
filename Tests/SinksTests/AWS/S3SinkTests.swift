import Foundation
import HTTPTypes
import NIOConcurrencyHelpers
import NIOCore
@testable import Sinks
import Support
import Testing

/// Records that barely compress: random hex, about 16 MiB as JSON lines, 8 MiB as zstd, so an object
/// of them needs a two-part upload with 5 MiB parts.
let noisyRecords: [LogRecord] = (0..<4_000).map { id in
    var generator = SystemRandomNumberGenerator()
    var bytes: [UInt8] = []
    bytes.reserveCapacity(2_048)
    while bytes.count < 2_048 { withUnsafeBytes(of: generator.next() as UInt64) { bytes += $0 } }
    var noisy = record(id)
    noisy.json = ByteBuffer(string: "{\"id\":\(id),\"noise\":\"\(Hex.encode(bytes))\"}")
    return noisy
}

func s3Sink(bucket: String, endpoint: String?, prefix: String = "fleet/", rollSize: Int = 1 << 20,
            rollEvery: Duration = .milliseconds(200)) throws -> S3Sink {
    var configuration = S3Sink.Configuration(name: "lake", bucket: bucket, connection: Moto.connection(endpoint))
    configuration.prefix = prefix
    configuration.rollSize = rollSize
    configuration.rollEvery = rollEvery
    configuration.partSize = 5 << 20
    configuration.gatewayID = "gw-test"
    return try S3Sink(configuration: configuration)
}

/// The S3 sink against moto's S3: objects read back (ListObjectsV2, GetObject, `zstd -t`, `zstd -dc`)
/// hold what agents sent, line for line; multipart uploads; an outage of the server.
@Suite(.enabled(if: Moto.isAvailable, "needs MOTO_URL (make test starts moto)"))
struct S3SinkTests {
    @Test func objectsHoldEveryLineInOrderAndRollBySize() async throws {
        let bucket = Moto.name("lake")
        try await Moto.createBucket(bucket)
        let sink = try s3Sink(bucket: bucket, endpoint: Moto.url, rollSize: 8 << 10)
        var expected: [String: [String]] = [:]
        try await withPipeline([.init(sink: sink)]) { pipeline in
            for batch in 0..<10 {
                for node in ["a", "b"] {
                    let records = (0..<30).map { record(batch * 30 + $0, node: node, pad: 40) }
                    expected[node, default: []] += records.map { String(buffer: $0.json) }
                    try await pipeline.append(records)
                }
            }
            #expect(await eventually { ((try? await Moto.lines(in: bucket, prefix: "fleet/"))?.count ?? 0) >= 600 })
        }
        let objects = try await Moto.objects(in: bucket, prefix: "fleet/")
        #expect(objects.count > 1, "rolled by size")
        for object in objects {
            #expect(object.key.range(of: #"^fleet/\d{4}/\d{2}/\d{2}/\d{2}/gw-test-\d{16}\.jsonl\.zst$"#, options: .regularExpression) != nil, "\(object.key)")
        }
        let lines = try await Moto.lines(in: bucket, prefix: "fleet/")
        #expect(lines.count == 600)
        for node in ["a", "b"] {
            #expect(lines.filter { $0.contains("\"node\":\"\(node)\"") } == expected[node]!)
        }
    }

    @Test func aLargeObjectGoesUpInPartsAndAppearsWhole() async throws {
        let bucket = Moto.name("lake")
        try await Moto.createBucket(bucket)
        let sink = try s3Sink(bucket: bucket, endpoint: Moto.url, prefix: "big", rollSize: 64 << 20)
        #expect(await sink.deliver(noisyRecords) == .delivered)
        await sink.close()
        let objects = try await Moto.objects(in: bucket, prefix: "big/")
        #expect(objects.count == 1)
        #expect(objects.first?.etag.hasSuffix("-2\"") == true, "a two-part upload: \(objects.first?.etag ?? "")")
        #expect(try await Moto.lines(in: bucket, prefix: "big/") == noisyRecords.map { String(buffer: $0.json) })
    }

    @Test func anOutageLosesNothingKeepsOrderAndNeverHoldsBackTheFileSink() async throws {
        let port = freePort()
        let endpoint = "http://127.0.0.1:\(port)"
        let directory = temporaryDirectory("s3-outage")
        let bucket = Moto.name("lake")
        let files = try FileSink(configuration: .init(name: "files", directory: directory + "/logs"))
        let lake = try s3Sink(bucket: bucket, endpoint: endpoint, rollSize: 4 << 10)
        var expected: [String: [String]] = [:]
        var moto: MotoProcess?
        defer { moto?.stop() }
        try await withPipeline([.init(sink: files), .init(sink: lake)], directory: directory) { pipeline in
            // Nothing listens on the port while three nodes log.
            for batch in 0..<10 {
                for node in ["a", "b", "c"] {
                    let records = (0..<5).map { record(batch * 5 + $0, node: node) }
                    expected[node, default: []] += records.map { String(buffer: $0.json) }
                    try await pipeline.append(records)
                }
            }
            let fileLines = { (try? String(contentsOfFile: directory + "/logs/osqueryd.results.log", encoding: .utf8))?.split(separator: "\n").count ?? 0 }
            #expect(await eventually(timeout: .seconds(5)) { fileLines() == 150 })
            // The server comes up, without the bucket at first (NoSuchBucket is retried), then with it.
            let started = try MotoProcess(port: port)
            moto = started
            #expect(await started.ready())
            try? await Task.sleep(for: .milliseconds(300))
            try await Moto.createBucket(bucket, endpoint: endpoint)
            #expect(await eventually(timeout: .seconds(30)) { ((try? await Moto.lines(in: bucket, endpoint: endpoint))?.count ?? 0) >= 150 })
        }
        let lines = try await Moto.lines(in: bucket, endpoint: endpoint)
        #expect(lines.count == 150)
        for node in ["a", "b", "c"] {
            #expect(lines.filter { $0.contains("\"node\":\"\(node)\"") } == expected[node]!)
        }
    }
}

/// The S3 sink's requests and failure handling, against a stub answering as S3 does where moto
/// cannot be made to fail: the exact multipart exchange, an abort, refusals.
@Suite struct S3SinkProtocolTests {
    @Test func multipartUploadsSendSignedPartsOfFiveMiBThenTheCompleteList() async throws {
        let stub = AWSStub()
        try await stub.start { _, request in
            switch request.method {
            case "POST" where request.query == "uploads=":
                return .init(body: "<InitiateMultipartUploadResult><UploadId>up/1+x</UploadId></InitiateMultipartUploadResult>")
            case "PUT":
                return .init(headers: [.eTag: "\"etag-\(request.query.prefix(12).suffix(1))\""])
            default:
                return .init(body: "<CompleteMultipartUploadResult><Key>k</Key></CompleteMultipartUploadResult>")
            }
        }
        let sink = try s3Sink(bucket: "logs", endpoint: stub.url, rollSize: 64 << 20)
        #expect(await sink.deliver(noisyRecords) == .delivered)
        await sink.close()
        await stub.stop()
        let seen = stub.seen
        #expect(seen.map(\.method) == ["POST", "PUT", "PUT", "POST"])
        #expect(seen.map(\.query) == ["uploads=", "partNumber=1&uploadId=up%2F1%2Bx", "partNumber=2&uploadId=up%2F1%2Bx", "uploadId=up%2F1%2Bx"])
        #expect(Set(seen.map(\.path)).count == 1)
        #expect(seen[0].path.range(of: #"^/logs/fleet/\d{4}/\d{2}/\d{2}/\d{2}/gw-test-\d{16}\.jsonl\.zst$"#, options: .regularExpression) != nil, "\(seen[0].path)")
        #expect(seen[1].body.readableBytes == 5 << 20)
        #expect(seen[2].body.readableBytes > 0 && seen[2].body.readableBytes < 5 << 20)
        #expect(seen[3].text == "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>\"etag-1\"</ETag></Part>"
            + "<Part><PartNumber>2</PartNumber><ETag>\"etag-2\"</ETag></Part></CompleteMultipartUpload>")
        for request in seen {
            #expect(request.header("X-Amz-Content-Sha256") == request.body.withUnsafeReadableBytes { AWSSigner.sha256($0) })
            let authorization = request.header("Authorization") ?? ""
            #expect(authorization.hasPrefix("AWS4-HMAC-SHA256 Credential=AKIDTEST/"))
            #expect(authorization.contains("/us-east-1/s3/aws4_request, SignedHeaders=content-type;host;x-amz-content-sha256;x-amz-date, Signature="))
        }
        // The parts put together are one zstd frame holding every line.
        var object = seen[1].body
        var last = seen[2].body
        object.writeBuffer(&last)
        #expect(try Moto.decompressedLines(object) == noisyRecords.map { String(buffer: $0.json) })
    }

    @Test func aFailedPartAbortsTheUploadSoNoObjectAppears() async throws {
        let stub = AWSStub()
        try await stub.start { _, request in
            switch request.method {
            case "POST": return .init(body: "<InitiateMultipartUploadResult><UploadId>u1</UploadId></InitiateMultipartUploadResult>")
            case "PUT" where request.query.hasPrefix("partNumber=1&"): return .init(headers: [.eTag: "\"e1\""])
            case "PUT": return .init(status: .internalServerError, body: "<Error><Code>InternalError</Code><Message>boom</Message></Error>")
            default: return .init(status: .noContent)
            }
        }
        let sink = try s3Sink(bucket: "logs", endpoint: stub.url, rollSize: 64 << 20)
        #expect(await sink.deliver(noisyRecords) == .retry(reason: "HTTP 500 InternalError: boom", after: nil))
        await sink.close()
        await stub.stop()
        #expect(stub.seen.map { "\($0.method) \($0.query)" } == ["POST uploads=", "PUT partNumber=1&uploadId=u1", "PUT partNumber=2&uploadId=u1", "DELETE uploadId=u1"])
    }

    @Test func anInvalidRequestIsDeadLetteredAndAccessDeniedIsRetried() async throws {
        let stub = AWSStub()
        let puts = NIOLockedValueBox(0)
        try await stub.start { _, request in
            // The worker's health check (HeadBucket) passes; the first object is refused, the rest denied.
            guard request.method == "PUT" else { return .init() }
            let count = puts.withLockedValue { count in
                count += 1
                return count
            }
            return count == 1
                ? .init(status: .badRequest, body: "<Error><Code>InvalidArgument</Code><Message>bad</Message></Error>")
                : .init(status: .forbidden, body: "<Error><Code>AccessDenied</Code><Message>no</Message></Error>")
        }
        let directory = temporaryDirectory("s3-reject")
        try await withPipeline([.init(sink: try s3Sink(bucket: "logs", endpoint: stub.url, rollEvery: .zero))], directory: directory) { pipeline in
            try await pipeline.append((0..<3).map { record($0) })
            #expect(await eventually { FileManager.default.fileExists(atPath: directory + "/deadletter/lake.jsonl") })
            try await pipeline.append([record(3)])
            #expect(await eventually { puts.withLockedValue { $0 } >= 4 })
        }
        await stub.stop()
        let lines = try String(contentsOfFile: directory + "/deadletter/lake.jsonl", encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 3, "only the refused batch; the one denied access stays in the spool")
        #expect(lines[0].hasPrefix(#"{"sink":"lake","reason":"HTTP 400 InvalidArgument: bad","rejected_at":"#))
        #expect(lines[0].hasSuffix(#","record":{"id":0,"node":"node-1"}}"#))
    }
}
