import Foundation
import NIOCore
import Support

/// Sends log lines to an Amazon Data Firehose delivery stream (`PutRecordBatch`, Signature V4), one
/// record per line, each ending in a newline so the objects Firehose writes are JSON lines.
///
/// Up to 500 records and 4 MiB per call, 1,000 KiB per record; a batch larger than a call is sent
/// in several. Records the stream reports failed are sent again alone, with backoff, before the
/// batch is reported for a retry (`AWSRecordPut`); refused calls follow `AWSServiceError`, and a
/// record over the limit, or one a refused call is singled out for, goes to the dead-letter file
/// alone while the rest of its batch is delivered.
public final class FirehoseSink: Sink {
    public struct Configuration: Sendable {
        public var name: String
        /// The delivery stream's name.
        public var deliveryStream: String
        public var connection: AWSConnection
        public var batching = Batching(maxRecords: 500, maxBytes: 3 << 20, maxWait: .seconds(1))
        /// Calls that resend failed records before the batch is reported for a retry.
        public var recordAttempts = 5
        public var recordBackoff = Backoff(base: .milliseconds(100), cap: .seconds(5))

        public init(name: String, deliveryStream: String, connection: AWSConnection) {
            self.name = name
            self.deliveryStream = deliveryStream
            self.connection = connection
        }
    }

    /// `PutRecordBatch`' limits.
    static let limits = AWSRecordPut.Limits(maxRecords: 500, maxBytes: 4 << 20, maxRecordBytes: 1_024_000)

    public let configuration: Configuration
    public var name: String { configuration.name }
    public var batching: Batching { configuration.batching }
    let client: AWSClient
    private let put: AWSRecordPut

    /// - Throws: `SinkError.io` when the endpoint is not a URL or its CA cannot be read.
    public init(configuration: Configuration) throws {
        self.configuration = configuration
        let connection = configuration.connection
        client = try AWSClient(connection: connection, service: "firehose", defaultHost: "firehose.\(connection.region).\(connection.domain)")
        put = AWSRecordPut(service: "Firehose", limits: Self.limits, attempts: max(1, configuration.recordAttempts), backoff: configuration.recordBackoff)
    }

    public func deliver(_ batch: [LogRecord]) async -> DeliveryOutcome {
        let sizes = batch.map { $0.json.readableBytes + 1 }
        let stream = "\"DeliveryStreamName\":\(JSONString.quoted(configuration.deliveryStream))"
        return await put.deliver(sizes: sizes) { indices in
            await put.call(client, target: "Firehose_20150804.PutRecordBatch", stream: stream, results: "RequestResponses",
                           indices: indices, sizes: sizes, overhead: 16) { index in
                var line = Data(batch[index].json.readableBytesView)
                line.append(UInt8(ascii: "\n"))
                return line
            }
        }
    }

    /// Describes the delivery stream: it exists and the credentials may use it.
    public func healthCheck() async throws {
        let body = ByteBuffer(string: "{\"DeliveryStreamName\":\(JSONString.quoted(configuration.deliveryStream))}")
        let response = try await client.call(target: "Firehose_20150804.DescribeDeliveryStream", json: body)
        guard response.succeeded else {
            throw SinkError.io("Firehose delivery stream \(configuration.deliveryStream): \(AWSServiceError(response))")
        }
    }

    public func close() async {
        await client.shutdown()
    }
}
