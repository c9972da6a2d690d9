import Foundation
import NIOCore
import Support

/// Sends each log line as one Kinesis Data Streams record (`PutRecords`, Signature V4), partition
/// key the node's id, so one node's lines stay on one shard and in order there.
///
/// Up to 500 records and 5 MiB per call, 1 MiB per record (data and key); a batch larger than a
/// call is sent in several. Records the stream reports failed (`ProvisionedThroughputExceeded`,
/// `InternalFailure`) are sent again alone, with backoff, before the batch is reported for a retry
/// (`AWSRecordPut`). Refused calls follow `AWSServiceError`: throttling, credentials and a missing
/// stream are retried; a record over the limit, or one a validation error singles out, goes to the
/// dead-letter file alone and the rest of its batch is delivered.
public final class KinesisSink: Sink {
    public struct Configuration: Sendable {
        public var name: String
        /// The stream's name.
        public var stream: String
        public var connection: AWSConnection
        public var batching = Batching(maxRecords: 500, maxBytes: 4 << 20, maxWait: .seconds(1))
        /// Calls that resend failed records before the batch is reported for a retry.
        public var recordAttempts = 5
        public var recordBackoff = Backoff(base: .milliseconds(100), cap: .seconds(5))

        public init(name: String, stream: String, connection: AWSConnection) {
            self.name = name
            self.stream = stream
            self.connection = connection
        }
    }

    /// `PutRecords`' limits.
    static let limits = AWSRecordPut.Limits(maxRecords: 500, maxBytes: 5 << 20, maxRecordBytes: 1 << 20)

    public let configuration: Configuration
    public var name: String { configuration.name }
    public var batching: Batching { configuration.batching }
    let client: AWSClient
    private let put: AWSRecordPut

    /// - Throws: `SinkError.io` when the endpoint is not a URL or its CA cannot be read.
    public init(configuration: Configuration) throws {
        self.configuration = configuration
        let connection = configuration.connection
        client = try AWSClient(connection: connection, service: "kinesis", defaultHost: "kinesis.\(connection.region).\(connection.domain)")
        put = AWSRecordPut(service: "Kinesis", limits: Self.limits, attempts: max(1, configuration.recordAttempts), backoff: configuration.recordBackoff)
    }

    public func deliver(_ batch: [LogRecord]) async -> DeliveryOutcome {
        let keys = batch.map(Self.partitionKey)
        let sizes = zip(batch, keys).map { record, key in record.json.readableBytes + key.utf8.count }
        let stream = "\"StreamName\":\(JSONString.quoted(configuration.stream))"
        return await put.deliver(sizes: sizes) { indices in
            await put.call(client, target: "Kinesis_20131202.PutRecords", stream: stream, results: "Records",
                           indices: indices, sizes: sizes, overhead: 48,
                           data: { Data(batch[$0].json.readableBytesView) },
                           members: { ",\"PartitionKey\":\(JSONString.quoted(keys[$0]))" })
        }
    }

    /// Describes the stream: it exists and the credentials may use it.
    public func healthCheck() async throws {
        let response = try await client.call(target: "Kinesis_20131202.DescribeStreamSummary",
                                             json: ByteBuffer(string: "{\"StreamName\":\(JSONString.quoted(configuration.stream))}"))
        guard response.succeeded else { throw SinkError.io("Kinesis stream \(configuration.stream): \(AWSServiceError(response))") }
    }

    public func close() async {
        await client.shutdown()
    }

    /// The node's id (its host identifier if it has none), at most Kinesis' 256 characters.
    static func partitionKey(_ record: LogRecord) -> String {
        let key = record.nodeID.isEmpty ? (record.hostIdentifier.isEmpty ? "-" : record.hostIdentifier) : record.nodeID
        return String(key.prefix(256))
    }
}
