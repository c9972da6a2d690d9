import Foundation
import NIOCore
import NIOHTTP1
@testable import Sinks
import Support

/// moto's server (`scripts/with-moto.sh`, which `make test` uses, exports `MOTO_URL`): the S3,
/// Kinesis and Firehose the AWS sinks are tested against, and the calls tests make to set up and
/// read back, all signed by the sinks' own client (moto accepts any credentials).
enum Moto {
    static let url = ProcessInfo.processInfo.environment["MOTO_URL"]
    static var isAvailable: Bool { url != nil }
    static let credentials = AWSCredentials(accessKeyID: "AKIDTEST", secretAccessKey: "moto-takes-any-secret")

    static func connection(_ endpoint: String? = url) -> AWSConnection {
        var connection = AWSConnection(region: "us-east-1", endpoint: endpoint, credentials: .fixed(credentials))
        connection.requestTimeout = .seconds(10)
        connection.connectTimeout = .seconds(2)
        return connection
    }

    /// Runs `body` with a client for `service` on `endpoint`, then shuts the client down.
    static func withClient<T>(_ service: String, endpoint: String?, _ body: (AWSClient) async throws -> T) async throws -> T {
        let client = try AWSClient(connection: connection(endpoint), service: service, defaultHost: "unused.invalid")
        do {
            let result = try await body(client)
            await client.shutdown()
            return result
        } catch {
            await client.shutdown()
            throw error
        }
    }

    /// A fresh lower-case name: tests share one server.
    static func name(_ label: String) -> String { "\(label)-\(UUID().uuidString.prefix(8).lowercased())" }

    static func expectSuccess(_ response: AWSClient.Response, _ what: String) throws {
        guard response.succeeded else { throw SinkError.io("\(what): HTTP \(response.status) \(String(buffer: response.body))") }
    }

    // MARK: S3

    static func createBucket(_ bucket: String, endpoint: String? = url) async throws {
        let response = try await withClient("s3", endpoint: endpoint) { try await $0.send(.PUT, path: "/\(bucket)", contentHashHeader: true) }
        try expectSuccess(response, "CreateBucket")
    }

    /// Keys under `prefix` in key order, with their ETags (`"…-2"` for a two-part upload).
    static func objects(in bucket: String, prefix: String = "", endpoint: String? = url) async throws -> [(key: String, etag: String)] {
        let response = try await withClient("s3", endpoint: endpoint) {
            try await $0.send(.GET, path: "/\(bucket)", query: [(name: "list-type", value: "2"), (name: "prefix", value: prefix)],
                              contentHashHeader: true)
        }
        try expectSuccess(response, "ListObjectsV2")
        let xml = String(buffer: response.body)
        let objects = xml.components(separatedBy: "<Contents>").dropFirst().map { entry -> (key: String, etag: String) in
            (key: AWSServiceError.element("Key", in: entry) ?? "", etag: AWSServiceError.element("ETag", in: entry) ?? "")
        }
        return objects.sorted { $0.key < $1.key }
    }

    static func object(_ key: String, in bucket: String, endpoint: String? = url) async throws -> ByteBuffer {
        let response = try await withClient("s3", endpoint: endpoint) {
            try await $0.send(.GET, path: "/\(bucket)/\(key)", contentHashHeader: true, maxResponseBytes: 256 << 20)
        }
        try expectSuccess(response, "GetObject \(key)")
        return response.body
    }

    /// What the zstd CLI makes of `object`: it must pass `zstd -t`; its lines.
    static func decompressedLines(_ object: ByteBuffer) throws -> [String] {
        let path = temporaryDirectory("s3-object") + "/object.jsonl.zst"
        try Data(object.readableBytesView).write(to: URL(fileURLWithPath: path))
        guard try run(["zstd", "-q", "-t", path]).status == 0 else { throw SinkError.io("zstd -t rejects the object") }
        let (status, output) = try run(["zstd", "-q", "-dc", path])
        guard status == 0 else { throw SinkError.io("zstd -dc failed") }
        return String(decoding: output, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).dropLast().map(String.init)
    }

    /// Every line of every object under `prefix`, objects in key order.
    static func lines(in bucket: String, prefix: String = "", endpoint: String? = url, compressed: Bool = true) async throws -> [String] {
        var lines: [String] = []
        for object in try await objects(in: bucket, prefix: prefix, endpoint: endpoint) {
            let body = try await Self.object(object.key, in: bucket, endpoint: endpoint)
            if compressed {
                lines += try decompressedLines(body)
            } else {
                lines += String(buffer: body).split(separator: "\n").map(String.init)
            }
        }
        return lines
    }

    // MARK: Kinesis and Firehose

    static func call(_ service: String, _ target: String, _ json: String, endpoint: String? = url) async throws -> [String: Any] {
        let response = try await withClient(service, endpoint: endpoint) { try await $0.call(target: target, json: ByteBuffer(string: json)) }
        try expectSuccess(response, target)
        return (try? JSONSerialization.jsonObject(with: Data(response.body.readableBytesView))) as? [String: Any] ?? [:]
    }

    static func createStream(_ stream: String, endpoint: String? = url) async throws {
        _ = try await call("kinesis", "Kinesis_20131202.CreateStream", #"{"StreamName":"\#(stream)","ShardCount":1}"#, endpoint: endpoint)
    }

    /// Every record of the (one-shard) stream from its start: data as text, and partition key.
    static func records(in stream: String, endpoint: String? = url) async throws -> [(data: String, key: String)] {
        let shards = try await call("kinesis", "Kinesis_20131202.ListShards", #"{"StreamName":"\#(stream)"}"#, endpoint: endpoint)
        var result: [(data: String, key: String)] = []
        for shard in shards["Shards"] as? [[String: Any]] ?? [] {
            let id = shard["ShardId"] as? String ?? ""
            let start = try await call("kinesis", "Kinesis_20131202.GetShardIterator",
                                       #"{"StreamName":"\#(stream)","ShardId":"\#(id)","ShardIteratorType":"TRIM_HORIZON"}"#, endpoint: endpoint)
            var iterator = start["ShardIterator"] as? String
            while let current = iterator {
                let page = try await call("kinesis", "Kinesis_20131202.GetRecords",
                                          "{\"ShardIterator\":\(JSONString.quoted(current)),\"Limit\":10000}", endpoint: endpoint)
                let records = page["Records"] as? [[String: Any]] ?? []
                for record in records {
                    let data = Data(base64Encoded: record["Data"] as? String ?? "") ?? Data()
                    result.append((data: String(decoding: data, as: UTF8.self), key: record["PartitionKey"] as? String ?? ""))
                }
                iterator = records.isEmpty ? nil : page["NextShardIterator"] as? String
            }
        }
        return result
    }

    /// A DirectPut delivery stream writing to `bucket` under `prefix` (moto writes one object per call).
    static func createDeliveryStream(_ name: String, bucket: String, prefix: String, endpoint: String? = url) async throws {
        _ = try await call("firehose", "Firehose_20150804.CreateDeliveryStream", """
            {"DeliveryStreamName":"\(name)","DeliveryStreamType":"DirectPut","ExtendedS3DestinationConfiguration":\
            {"RoleARN":"arn:aws:iam::123456789012:role/firehose","BucketARN":"arn:aws:s3:::\(bucket)","Prefix":"\(prefix)",\
            "BufferingHints":{"SizeInMBs":1,"IntervalInSeconds":60}}}
            """, endpoint: endpoint)
    }
}

/// A moto server of a test's own on `port`, for outages: started late, stopped by its PID.
final class MotoProcess {
    private let server: ServerProcess
    let url: String

    init(port: Int) throws {
        url = "http://127.0.0.1:\(port)"
        server = try ServerProcess("/usr/bin/env", ["moto_server", "-p", "\(port)", "-H", "127.0.0.1"])
    }

    /// Waits until the server answers.
    func ready() async -> Bool {
        await eventually(timeout: .seconds(30)) { (try? run(["curl", "-sf", "-o", "/dev/null", url + "/moto-api/"]).status) == 0 }
    }

    func stop() { server.stop() }
}
