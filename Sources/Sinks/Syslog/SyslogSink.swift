import NIOConcurrencyHelpers
import NIOCore
import NIOSSL
public import Support

/// Sends records to a syslog receiver (rsyslog, syslog-ng, a SIEM's collector) as RFC 5424 messages
/// over TCP or TLS, framed by octet counting (RFC 6587, RFC 5425); `SyslogMessage` has the layout.
///
/// One connection per sink, opened on first use and again after any failure. A batch is one write
/// of every frame, flushed.
///
/// - Important: TCP syslog has no acknowledgement from the application. A batch counts as
///   delivered once all of its bytes were written to the socket and flushed; a receiver that dies
///   with them unread loses them, which no sender can detect (RFC 6587 section 4). The sink narrows
///   that window: a connection the receiver closed or reset between batches is noticed before the
///   next write (NIO reads it all the time), and that batch goes to a new connection. Where every
///   line must be proven stored, prefer a sink with acknowledgements (HTTP, NATS JetStream).
///
/// Outcomes: connection errors, TLS errors and write timeouts are retried (the worker backs off);
/// nothing is rejected, since the receiver cannot refuse a message.
public final class SyslogSink: Sink {
    public struct Configuration: Sendable {
        /// The sink's name in logs and metrics.
        public var name: String
        /// `tcp://host:port` or `tls://host:port`.
        public var address: NetworkAddress
        /// APP-NAME of every message (1-48 printable ASCII characters).
        public var appName = "osquery"
        public var facility = SyslogFacility.local0
        /// For `tls`: PEM bundle the receiver's certificate must chain to; nil: the system store.
        public var ca: String?
        /// For `tls`: a certificate to present when the receiver asks for one.
        public var clientCertificate: HTTPEndpoint.ClientCertificate?
        /// TCP connect, and the TLS handshake, each.
        public var connectTimeout: Duration = .seconds(5)
        /// Writing one batch; a receiver that stops reading for this long gets a new connection.
        public var writeTimeout: Duration = .seconds(30)
        public var batching = Batching(maxRecords: 1_000, maxBytes: 4 << 20, maxWait: .zero)

        public init(name: String, address: NetworkAddress) {
            self.name = name
            self.address = address
        }
    }

    /// Whether `name` can be an APP-NAME: 1 to 48 printable US-ASCII characters (RFC 5424 6.2.5).
    public static func isValidAppName(_ name: String) -> Bool { SyslogMessage.isValidAppName(name) }

    public let configuration: Configuration
    public var name: String { configuration.name }
    public var batching: Batching { configuration.batching }
    private let message: SyslogMessage
    private let tls: NIOSSLContext?
    private let connection = NIOLockedValueBox<(any Channel)?>(nil)

    /// - Throws: when the CA, certificate or key file cannot be read.
    public init(configuration: Configuration) throws {
        self.configuration = configuration
        message = SyslogMessage(appName: configuration.appName, facility: configuration.facility)
        if configuration.address.scheme == "tls" {
            tls = try NIOSSLContext(configuration: OutboundTLS.configuration(ca: configuration.ca, clientCertificate: configuration.clientCertificate))
        } else {
            tls = nil
        }
    }

    public func deliver(_ batch: [LogRecord]) async -> DeliveryOutcome {
        var frames = ByteBuffer()
        frames.reserveCapacity(batch.reduce(0) { $0 + $1.json.readableBytes + 200 })
        for record in batch { message.writeFrame(record, into: &frames) }
        let channel: any Channel
        do {
            channel = try await connected()
        } catch {
            return .retry(reason: "cannot connect to \(configuration.address): \(error)", after: nil)
        }
        do {
            let deadline = channel.eventLoop.scheduleTask(in: TimeAmount(configuration.writeTimeout)) { channel.close(promise: nil) }
            defer { deadline.cancel() }
            try await channel.writeAndFlush(frames).get()
            return .delivered
        } catch {
            drop(channel)
            return .retry(reason: "writing to \(configuration.address) failed: \(error)", after: nil)
        }
    }

    /// Connects (and, for TLS, completes the handshake), as delivering does.
    public func healthCheck() async throws {
        _ = try await connected()
    }

    public func close() async {
        let channel = connection.withLockedValue { current in
            defer { current = nil }
            return current
        }
        try? await channel?.close()
    }

    /// The open connection, or a new one when there is none or the receiver closed it.
    private func connected() async throws -> any Channel {
        if let open = connection.withLockedValue({ $0 }), open.isActive { return open }
        let fresh = try await TCPConnector.connect(to: configuration.address, tls: tls, timeout: configuration.connectTimeout)
        let previous = connection.withLockedValue { current in
            defer { current = fresh }
            return current
        }
        previous?.close(promise: nil)
        return fresh
    }

    /// Forgets `channel` after a failure, so the next batch connects again.
    private func drop(_ channel: any Channel) {
        connection.withLockedValue { current in
            if current === channel { current = nil }
        }
        channel.close(promise: nil)
    }
}
