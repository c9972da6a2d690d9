import Foundation
import Logging
import NIOCore
import NIOHTTP1
import PostgresNIO
@testable import Sinks
import Support

/// The servers `make test` starts for the sinks (moto, nats-server, rsyslogd, PostgreSQL; see
/// `scripts/with-*.sh`), seen from the gateway tests: setting up what a sink writes to, and reading
/// back what arrived, on the sinks' own clients (moto accepts any credentials).
enum SinkServers {
    static let environment = ProcessInfo.processInfo.environment

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    // MARK: moto (S3, Kinesis, Firehose)

    static var motoURL: String { environment["MOTO_URL"] ?? "" }
    /// A shared-credentials file for a gateway's `credentials_file`.
    static let awsCredentialsFile = "[default]\naws_access_key_id = AKIDTEST\naws_secret_access_key = moto-takes-any-secret\n"

    /// Runs `body` with a client for `service` on moto, then shuts the client down.
    static func withAWS<T>(_ service: String, _ body: (AWSClient) async throws -> T) async throws -> T {
        var connection = AWSConnection(region: "us-east-1", endpoint: motoURL,
                                       credentials: .fixed(AWSCredentials(accessKeyID: "AKIDTEST", secretAccessKey: "moto-takes-any-secret")))
        connection.requestTimeout = .seconds(10)
        connection.connectTimeout = .seconds(2)
        let client = try AWSClient(connection: connection, service: service, defaultHost: "unused.invalid")
        do {
            let value = try await body(client)
            await client.shutdown()
            return value
        } catch {
            await client.shutdown()
            throw error
        }
    }

    static func succeeded(_ response: AWSClient.Response, _ what: String) throws {
        guard response.succeeded else { throw Failure(description: "\(what): HTTP \(response.status) \(String(buffer: response.body).prefix(300))") }
    }

    /// A Kinesis or Firehose JSON call; its answer as an object.
    static func awsCall(_ service: String, _ target: String, _ json: String) async throws -> [String: Any] {
        let response = try await withAWS(service) { try await $0.call(target: target, json: ByteBuffer(string: json)) }
        try succeeded(response, target)
        return (try? JSONSerialization.jsonObject(with: Data(response.body.readableBytesView))) as? [String: Any] ?? [:]
    }

    static func createBucket(_ bucket: String) async throws {
        let response = try await withAWS("s3") { try await $0.send(.PUT, path: "/\(bucket)", contentHashHeader: true) }
        try succeeded(response, "CreateBucket \(bucket)")
    }

    /// The bodies of the objects under `prefix`, in key order (up to 1,000: one listing page).
    static func objects(in bucket: String, prefix: String) async throws -> [(key: String, body: ByteBuffer)] {
        try await withAWS("s3") { (client: AWSClient) -> [(key: String, body: ByteBuffer)] in
            let list = try await client.send(.GET, path: "/\(bucket)", query: [(name: "list-type", value: "2"), (name: "prefix", value: prefix)],
                                             contentHashHeader: true)
            try succeeded(list, "ListObjectsV2 \(bucket)")
            let keys = String(buffer: list.body).components(separatedBy: "<Contents>").dropFirst()
                .compactMap { AWSServiceError.element("Key", in: $0) }.sorted()
            var objects: [(key: String, body: ByteBuffer)] = []
            for key in keys {
                let object = try await client.send(.GET, path: "/\(bucket)/\(key)", contentHashHeader: true, maxResponseBytes: 256 << 20)
                try succeeded(object, "GetObject \(key)")
                objects.append((key: key, body: object.body))
            }
            return objects
        }
    }

    static func createStream(_ stream: String) async throws {
        _ = try await awsCall("kinesis", "Kinesis_20131202.CreateStream", #"{"StreamName":"\#(stream)","ShardCount":1}"#)
    }

    /// The data of every record of `stream` from its start, shard by shard.
    static func records(in stream: String) async throws -> [String] {
        let shards = try await awsCall("kinesis", "Kinesis_20131202.ListShards", #"{"StreamName":"\#(stream)"}"#)
        var result: [String] = []
        for shard in shards["Shards"] as? [[String: Any]] ?? [] {
            let id = shard["ShardId"] as? String ?? ""
            let start = try await awsCall("kinesis", "Kinesis_20131202.GetShardIterator",
                                          #"{"StreamName":"\#(stream)","ShardId":"\#(id)","ShardIteratorType":"TRIM_HORIZON"}"#)
            var iterator = start["ShardIterator"] as? String
            while let current = iterator {
                let page = try await awsCall("kinesis", "Kinesis_20131202.GetRecords", "{\"ShardIterator\":\(JSONString.quoted(current)),\"Limit\":10000}")
                let records = page["Records"] as? [[String: Any]] ?? []
                for record in records {
                    result.append(String(decoding: Data(base64Encoded: record["Data"] as? String ?? "") ?? Data(), as: UTF8.self))
                }
                iterator = records.isEmpty ? nil : page["NextShardIterator"] as? String
            }
        }
        return result
    }

    /// A DirectPut delivery stream writing each call's records to `bucket` under `prefix`.
    static func createDeliveryStream(_ name: String, bucket: String, prefix: String) async throws {
        _ = try await awsCall("firehose", "Firehose_20150804.CreateDeliveryStream", """
            {"DeliveryStreamName":"\(name)","DeliveryStreamType":"DirectPut","ExtendedS3DestinationConfiguration":\
            {"RoleARN":"arn:aws:iam::123456789012:role/firehose","BucketARN":"arn:aws:s3:::\(bucket)","Prefix":"\(prefix)",\
            "BufferingHints":{"SizeInMBs":1,"IntervalInSeconds":60}}}
            """)
    }

    /// The lines of a zstd object, which must be complete: `zstd -t` passes, and so does `zstd -dc`.
    static func zstdLines(_ object: ByteBuffer) throws -> [String] {
        let path = makeTemporaryDirectory("zstd-object") + "/object.jsonl.zst"
        try Data(object.readableBytesView).write(to: URL(fileURLWithPath: path))
        guard try tool(["zstd", "-q", "-t", path]).status == 0 else { throw Failure(description: "zstd -t rejects the object") }
        let (status, output) = try tool(["zstd", "-q", "-dc", path])
        guard status == 0 else { throw Failure(description: "zstd -dc failed") }
        return String(decoding: output, as: UTF8.self).split(separator: "\n").map(String.init)
    }

    /// Runs a command found on the PATH; its exit status and standard output.
    static func tool(_ arguments: [String]) throws -> (status: Int32, output: Data) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, data)
    }

    // MARK: nats-server (JetStream)

    static var natsURL: String { environment["NATS_URL"] ?? "" }

    /// The payload of every message `stream` holds, in order (none when it does not exist).
    static func natsMessages(stream: String) async throws -> [String] {
        guard let address = NetworkAddress(parsing: natsURL, schemes: ["nats"], defaultPort: 4222) else {
            throw Failure(description: "NATS_URL is not a nats:// URL")
        }
        let connection = try await NATSConnection.connect(to: address, name: "gateway-tests", timeout: .seconds(5))
        defer { connection.close() }
        func object(_ message: NATSMessage) -> [String: Any]? {
            (try? JSONSerialization.jsonObject(with: Data(message.payload.readableBytesView))) as? [String: Any]
        }
        let info = try await connection.request(subject: "$JS.API.STREAM.INFO.\(stream)", timeout: .seconds(5))
        let last = ((object(info)?["state"] as? [String: Any])?["last_seq"] as? Int) ?? 0
        guard last > 0 else { return [] }
        var payloads: [String] = []
        // Many requests in flight at once (each answer finds its own reply subject), 500 at a time.
        for start in stride(from: 1, through: last, by: 500) {
            let requests = (start...min(start + 499, last)).map { seq in
                (subject: "$JS.API.STREAM.MSG.GET.\(stream)", payload: ByteBuffer(string: "{\"seq\":\(seq)}"))
            }
            for answer in try await connection.publish(requests, timeout: .seconds(20)) {
                guard let message = object(answer)?["message"] as? [String: Any],
                    let data = (message["data"] as? String).flatMap({ Data(base64Encoded: $0) })
                else { continue }
                payloads.append(String(decoding: data, as: UTF8.self))
            }
        }
        return payloads
    }

    // MARK: rsyslogd

    static var syslogPort: String { environment["RSYSLOG_TCP_PORT"] ?? "" }

    /// Every line rsyslogd wrote so far (all tests share the file).
    static func syslogLines() -> [String] {
        let text = String(decoding: FileManager.default.contents(atPath: environment["RSYSLOG_OUTPUT_FILE"] ?? "") ?? Data(), as: UTF8.self)
        return text.split(separator: "\n").map(String.init)
    }

    // MARK: PostgreSQL

    static var postgresURL: String { environment["POSTGRES_URL"] ?? "" }

    /// The `record` column of every row of `table`, as text.
    static func postgresRecords(table: String) async throws -> [String] {
        var logger = Logger(label: "sink-servers")
        logger.logLevel = .critical
        let pool = PostgresPool(endpoint: try PostgresEndpoint(url: postgresURL), logger: logger)
        do {
            let rows = try await pool.rows("SELECT record::text FROM \(unescaped: table) ORDER BY id")
            let records = try rows.map { try $0.decode(String.self) }
            await pool.shutdown()
            return records
        } catch {
            await pool.shutdown()
            throw error
        }
    }
}
