import CZstd
import Foundation
import NIOCore
import NIOPosix

/// zstd-compressed JSON-lines objects in an S3 bucket (or an S3-compatible store):
/// `<prefix>YYYY/MM/DD/HH/<gateway-id>-<seq>.jsonl.zst` (`S3ObjectKey`), one zstd frame per object,
/// the stream the archive sink writes; `zstd -dc` reads them.
///
/// Durability: one `deliver` call writes one complete object, and a batch counts as delivered only
/// once the object holding it is complete. Rolling by size and age is the worker's batching
/// (`maxBytes` = `rollSize`, `maxWait` = `rollEvery`), not state kept between batches, so nothing
/// the sink has said `delivered` for can be lost in a crash, and nothing it has not is visible:
/// - a small object is one `PutObject`, which S3 makes visible whole or not at all;
/// - a large one (over `partSize` compressed) is a multipart upload, invisible until
///   `CompleteMultipartUpload`; a failure on the way aborts the upload, and a crash leaves only
///   invisible parts (a bucket lifecycle rule `AbortIncompleteMultipartUpload` frees them).
/// Either way the batch's cursor has not moved, and the batch is sent again from the spool, into a
/// new key. A resend after an answer was lost can leave the same lines in two objects: delivery is
/// at least once, as everywhere.
///
/// Refusals follow `AWSServiceError` (throttling, credentials, a missing bucket: retried; any other
/// 4xx: the batch is dead-lettered).
public final class S3Sink: Sink {
    public struct Configuration: Sendable {
        public var name: String
        public var bucket: String
        /// Put before every key; normalized to end in `/` (`fleet` gives `fleet/2026/...`).
        public var prefix: String = ""
        public var connection: AWSConnection
        /// Longest time a partial object waits for more records before it is written.
        public var rollEvery: Duration = .seconds(300)
        /// Uncompressed bytes per object, about: the batch size the worker reads.
        public var rollSize: Int = 64 << 20
        /// Compressed bytes per multipart part (at least 5 MiB, S3's minimum); objects up to this
        /// size are one `PutObject`.
        public var partSize: Int = 16 << 20
        /// zstd level (1-19).
        public var level: Int = 3
        /// The `<gateway-id>` of keys: tells apart gateways writing to one prefix.
        public var gatewayID: String = S3ObjectKey.defaultGatewayID

        public init(name: String, bucket: String, connection: AWSConnection) {
            self.name = name
            self.bucket = bucket
            self.connection = connection
        }
    }

    /// S3's smallest part (every part but the last).
    static let minimumPartSize = 5 << 20
    /// S3's most parts per upload.
    static let maximumParts = 10_000
    static let contentType = "application/zstd"

    public let configuration: Configuration
    public var name: String { configuration.name }
    /// One object per batch: up to `rollSize` bytes, or what came within `rollEvery`.
    public var batching: Batching {
        Batching(maxRecords: 1 << 24, maxBytes: configuration.rollSize, maxWait: configuration.rollEvery)
    }
    let bucket: S3Bucket
    private let prefix: String

    /// - Throws: `SinkError.io` when the endpoint is not a URL or its CA cannot be read.
    public init(configuration: Configuration) throws {
        self.configuration = configuration
        bucket = try S3Bucket(name: configuration.bucket, connection: configuration.connection)
        prefix = S3ObjectKey.normalized(prefix: configuration.prefix)
    }

    public func deliver(_ batch: [LogRecord]) async -> DeliveryOutcome {
        let level = Int32(configuration.level)
        let object: ByteBuffer
        do {
            object = try await NIOThreadPool.singleton.runIfActive { try S3Sink.compress(batch, level: level) }
        } catch {
            return .retry(reason: "zstd: \(error)", after: nil)
        }
        let key = S3ObjectKey.next(prefix: prefix, gatewayID: configuration.gatewayID)
        do {
            let partSize = Self.partSize(for: object.readableBytes, configured: configuration.partSize)
            if object.readableBytes <= partSize {
                try await bucket.put(key, object, contentType: Self.contentType)
            } else {
                try await uploadInParts(key, object, partSize: partSize)
            }
            return .delivered
        } catch let error as AWSServiceError {
            return error.outcome
        } catch {
            return .retry(reason: "S3: \(error)", after: nil)
        }
    }

    /// Probes the bucket (`HeadBucket`).
    public func healthCheck() async throws {
        do {
            try await bucket.head()
        } catch let error as AWSServiceError {
            throw SinkError.io("S3 bucket \(configuration.bucket): \(error)")
        }
    }

    public func close() async {
        await bucket.client.shutdown()
    }

    /// Parts in order, then `CompleteMultipartUpload`; on any failure the upload is aborted, so no
    /// object and no orphaned parts remain, and the error goes up for a retry or a rejection.
    private func uploadInParts(_ key: String, _ object: ByteBuffer, partSize: Int) async throws {
        let uploadID = try await bucket.createMultipartUpload(key, contentType: Self.contentType)
        do {
            var etags: [String] = []
            var offset = 0
            while offset < object.readableBytes {
                let length = min(partSize, object.readableBytes - offset)
                let part = object.getSlice(at: object.readerIndex + offset, length: length)!
                etags.append(try await bucket.uploadPart(key, uploadID: uploadID, number: etags.count + 1, part))
                offset += length
            }
            try await bucket.completeMultipartUpload(key, uploadID: uploadID, etags: etags)
        } catch {
            await bucket.abortMultipartUpload(key, uploadID: uploadID)
            throw error
        }
    }

    /// The part size for an object of `size` bytes: the configured one, raised to S3's minimum,
    /// and raised further if the object would need more than 10,000 parts.
    static func partSize(for size: Int, configured: Int) -> Int {
        max(configured, minimumPartSize, (size + maximumParts - 1) / maximumParts)
    }

    /// The batch as JSON lines in one zstd frame (with a checksum, as the archive sink writes),
    /// fed to the compressor a megabyte at a time.
    static func compress(_ batch: [LogRecord], level: Int32) throws -> ByteBuffer {
        let compressor = try ZstdCompressor(level: level)
        var output = ByteBuffer()
        var chunk = ByteBuffer()
        chunk.reserveCapacity(1 << 20)
        for record in batch {
            chunk.writeImmutableBuffer(record.json)
            chunk.writeInteger(UInt8(ascii: "\n"))
            if chunk.readableBytes >= 1 << 20 {
                try chunk.withUnsafeReadableBytes { bytes in
                    try compressor.compress(bytes, mode: ZSTD_e_continue) { output.writeBytes($0) }
                }
                chunk.clear()
            }
        }
        try chunk.withUnsafeReadableBytes { bytes in
            try compressor.compress(bytes, mode: ZSTD_e_end) { output.writeBytes($0) }
        }
        return output
    }
}
