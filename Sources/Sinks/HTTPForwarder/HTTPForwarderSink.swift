import AsyncHTTPClient
import CZstd
import CompressNIO
import Foundation
import NIOCore
import NIOHTTP1
public import Support

/// Forwards batches to an HTTP endpoint: a SIEM, a log store, a webhook.
///
/// Outcome rules (the worker retries with capped exponential backoff and full jitter):
/// - 2xx: delivered, unless the format's answer reports records it did not take (`kafka_rest`:
///   an `offsets` entry with an `error_code`), which is a retry;
/// - connection errors, timeouts, 408, 429 and 5xx: retry, honouring `Retry-After` (seconds or an
///   HTTP date);
/// - any other status: rejected, and the batch goes to the dead-letter file; never retried forever.
public final class HTTPForwarderSink: Sink {
    public enum Compression: String, Sendable, CaseIterable { case none, gzip, zstd }

    public struct Configuration: Sendable {
        public var name: String
        /// Where batches are posted: URL, headers (auth included), CA, client certificate, timeouts, pool.
        public var endpoint: HTTPEndpoint
        public var format: HTTPForwarderFormat = .ndjson
        public var compression: Compression = .none
        /// Elasticsearch index (default `osquery-<log type>`).
        public var index: String?
        /// ClickHouse table for the `clickhouse` format.
        public var table: String?
        public var batching = Batching(maxRecords: 1_000, maxBytes: 4 << 20, maxWait: .seconds(1))

        public init(name: String, endpoint: HTTPEndpoint) {
            self.name = name
            self.endpoint = endpoint
        }

        public init(name: String, url: String) {
            self.init(name: name, endpoint: HTTPEndpoint(url: url, method: .POST))
        }
    }

    public let configuration: Configuration
    public var name: String { configuration.name }
    public var batching: Batching { configuration.batching }
    private let client: HTTPClient
    private let target: String

    public init(configuration: Configuration) throws {
        self.configuration = configuration
        client = try configuration.endpoint.makeClient()
        let url = configuration.endpoint.url
        if configuration.format == .clickhouse {
            let query = "INSERT INTO \(configuration.table ?? "osquery_logs") FORMAT JSONEachRow"
            let encoded = query.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? query
            target = url + (url.contains("?") ? "&" : "?") + "input_format_skip_unknown_fields=1&query=" + encoded
        } else {
            target = url
        }
    }

    public func deliver(_ batch: [LogRecord]) async -> DeliveryOutcome {
        var body = configuration.format.encode(batch, index: configuration.index)
        var request = configuration.endpoint.request(to: target)
        request.headers.add(name: "Content-Type", value: configuration.format.contentType)
        do {
            switch configuration.compression {
            case .none: break
            case .gzip:
                body = try body.compress(with: .gzip())
                request.headers.add(name: "Content-Encoding", value: "gzip")
            case .zstd:
                body = try Self.zstd(body)
                request.headers.add(name: "Content-Encoding", value: "zstd")
            }
        } catch {
            return .retry(reason: "compression failed: \(error)", after: nil)
        }
        request.body = .bytes(body)
        do {
            let response = try await client.execute(request, timeout: configuration.endpoint.requestTimeAmount)
            let answer = try await response.body.collect(upTo: 16 << 20)
            let excerpt = String(buffer: answer).prefix(200)
            let code = Int(response.status.code)
            switch code {
            case 200..<300:
                if let failure = configuration.format.failure(inAccepted: answer) { return .retry(reason: failure, after: nil) }
                return .delivered
            case 408, 429, 500...:
                return .retry(reason: "HTTP \(code): \(excerpt)", after: Self.retryAfter(response.headers.first(name: "Retry-After")))
            default:
                return .rejected(reason: "HTTP \(code): \(excerpt)")
            }
        } catch {
            return .retry(reason: "\(error)", after: nil)
        }
    }

    /// Reaches the server: any HTTP answer means the path works.
    public func healthCheck() async throws {
        var request = configuration.endpoint.request()
        request.method = .GET
        _ = try await client.execute(request, timeout: .seconds(5))
    }

    public func close() async {
        try? await client.shutdown()
    }

    /// `Retry-After` as seconds or an HTTP date.
    static func retryAfter(_ value: String?) -> Duration? {
        guard let value = value?.trimmingCharacters(in: .whitespaces), !value.isEmpty else { return nil }
        if let seconds = Int(value), seconds >= 0 { return .seconds(seconds) }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        guard let date = formatter.date(from: value) else { return nil }
        return .milliseconds(max(0, Int64(date.timeIntervalSinceNow * 1000)))
    }

    static func zstd(_ input: ByteBuffer) throws -> ByteBuffer {
        let compressor = try ZstdCompressor(level: 3)
        var output = ByteBuffer()
        try input.withUnsafeReadableBytes { bytes in
            try compressor.compress(bytes, mode: ZSTD_e_end) { output.writeBytes($0) }
        }
        return output
    }
}
