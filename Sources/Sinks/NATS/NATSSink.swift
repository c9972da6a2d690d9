import NIOConcurrencyHelpers
import NIOCore
import NIOSSL

/// Publishes every record as one NATS message to a JetStream stream, on the subject its template
/// gives (`osquery.{log_type}.{name}`), the record's JSON as the payload.
///
/// A batch counts as delivered only when JetStream acknowledged every message of it: each publish
/// carries a reply subject and the stream answers once it stored the message
/// (`NATSJetStream`). Publishing without a stream is never taken for delivery, so a subject no
/// stream takes is retried (the records wait in the spool) rather than lost.
///
/// Outcomes:
/// - every message acknowledged: delivered;
/// - no connection, a closed connection, acknowledgements missing after `ackTimeout`, a subject no
///   stream takes (503), or JetStream errors other than 4xx (a full stream that discards new
///   messages, no leader): retry; the whole batch is published again, so messages acknowledged in a
///   failed batch reach the stream twice (delivery is at least once);
/// - a JetStream 4xx error (a message over the stream's `max_msg_size`, a sealed stream), or a record
///   larger than the server's `max_payload` (which is not sent: the server would close the
///   connection): only those records go to the dead-letter file, and the batch's other messages,
///   published and acknowledged, are delivered (`partlyRejected`; `rejected` when none was stored).
///
/// TLS (`NATSTLS`): after the server's plain-text `INFO`, when the server requires it or the sink
/// is configured for it; then `CONNECT` goes through TLS.
///
/// One connection per sink, made on first use and again after any failure. With `stream` set, each
/// new connection first creates the stream if it is missing, taking `streamSubjects` (by default the
/// template's fixed leading tokens and `>`), so a server that lost its storage is set up again.
public final class NATSSink: Sink {
    public struct Configuration: Sendable {
        /// The sink's name in logs and metrics.
        public var name: String
        /// `nats://[user[:password]@]host[:port]` (port 4222 by default); a user alone is a token.
        /// `tls://` instead of `nats://` insists on TLS, as `tls` does.
        public var address: NetworkAddress
        /// TLS settings; the sink then refuses a server that offers no TLS. nil: TLS only when the
        /// server requires it, trusting the system's store (`NATSTLS`).
        public var tls: NATSTLS?
        public var subject: NATSSubjectTemplate
        /// A stream to create when missing; nil: the stream must exist already.
        public var stream: String?
        /// Subjects of a stream this sink creates; nil: `subject.streamSubjects`.
        public var streamSubjects: [String]?
        /// TCP connect, the server's INFO, and its answer to CONNECT, each.
        public var connectTimeout: Duration = .seconds(5)
        /// How long a batch may wait for all of its acknowledgements.
        public var ackTimeout: Duration = .seconds(10)
        public var batching = Batching(maxRecords: 1_000, maxBytes: 4 << 20, maxWait: .zero)

        public init(name: String, address: NetworkAddress, subject: NATSSubjectTemplate) {
            self.name = name
            self.address = address
            self.subject = subject
        }

        /// The connection must be TLS: `tls` is set or the URL is `tls://`.
        public var requiresTLS: Bool { tls != nil || address.scheme == "tls" }
    }

    public let configuration: Configuration
    public var name: String { configuration.name }
    public var batching: Batching { configuration.batching }
    private let connection = NIOLockedValueBox<NATSConnection?>(nil)
    /// Made once: the CA and client certificate are read when the sink is built, not per connection.
    /// nil: no TLS configured and no system trust store to use, so a server requiring TLS is refused.
    private let upgrade: NATSConnection.TLSUpgrade?

    /// - Throws: when the CA, certificate or key file of `tls` cannot be read.
    public init(configuration: Configuration) throws {
        self.configuration = configuration
        if configuration.requiresTLS {
            let tls = configuration.tls ?? NATSTLS()
            upgrade = NATSConnection.TLSUpgrade(context: try tls.makeContext(), required: true, serverName: tls.serverName)
        } else {
            // Used only if the server turns out to require TLS.
            upgrade = (try? NATSTLS().makeContext()).map { NATSConnection.TLSUpgrade(context: $0, required: false, serverName: nil) }
        }
    }

    public func deliver(_ batch: [LogRecord]) async -> DeliveryOutcome {
        let nats: NATSConnection
        do {
            nats = try await connected()
        } catch {
            return .retry(reason: "cannot connect to \(configuration.address): \(error)", after: nil)
        }
        let limit = nats.maxPayload
        var messages: [(subject: String, payload: ByteBuffer)] = []
        messages.reserveCapacity(batch.count)
        // The batch index of each message, and the records not published.
        var positions: [Int] = []
        var oversized: [Int] = []
        for (index, record) in batch.enumerated() {
            if record.json.readableBytes > limit {
                oversized.append(index)
            } else {
                messages.append((subject: configuration.subject.subject(for: record), payload: record.json))
                positions.append(index)
            }
        }
        var refused: [(index: Int, reason: String)] = []
        if !messages.isEmpty {
            let answers: [NATSMessage]
            do {
                answers = try await nats.publish(messages, timeout: configuration.ackTimeout)
            } catch {
                drop(nats)
                return .retry(reason: "publishing to \(configuration.address) failed: \(error)", after: nil)
            }
            var failed: [String] = []
            for (index, (message, answer)) in zip(positions, zip(messages, answers)) {
                switch NATSJetStream.ack(answer, subject: message.subject) {
                case .stored: continue
                case .failed(let code, let reason) where (400..<500).contains(code): refused.append((index: index, reason: reason))
                case .failed(_, let reason): failed.append(reason)
                }
            }
            if let first = failed.first {
                return .retry(reason: "\(failed.count) of \(messages.count) messages not stored: \(first)", after: nil)
            }
        }
        let indices = (oversized + refused.map { $0.index }).sorted()
        guard !indices.isEmpty else { return .delivered }
        var parts: [String] = []
        if !oversized.isEmpty {
            parts.append("\(oversized.count) records over the server's max_payload of \(limit) bytes were not published")
        }
        if let first = refused.first { parts.append("\(refused.count) messages refused: \(first.reason)") }
        let reason = parts.joined(separator: "; ")
        return indices.count == batch.count ? .rejected(reason: reason) : .partlyRejected(indices: indices, reason: reason)
    }

    /// Connects, logs in and (with `stream`) creates the stream, as the first delivery would.
    public func healthCheck() async throws {
        _ = try await connected()
    }

    public func close() async {
        let nats = connection.withLockedValue { current in
            defer { current = nil }
            return current
        }
        nats?.close()
    }

    /// The open connection, or a new one (with the stream checked) when there is none or it closed.
    private func connected() async throws -> NATSConnection {
        if let open = connection.withLockedValue({ $0 }), open.isActive { return open }
        let fresh = try await NATSConnection.connect(to: configuration.address, name: "osquery-gateway \(configuration.name)",
                                                     timeout: configuration.connectTimeout, tls: upgrade)
        if let stream = configuration.stream {
            do {
                guard let subjects = configuration.streamSubjects ?? configuration.subject.streamSubjects else {
                    throw NATSReplies.Failure(description: "no subjects for stream \(stream): the subject template starts with a placeholder")
                }
                try await NATSJetStream.ensureStream(stream, subjects: subjects, on: fresh, timeout: configuration.ackTimeout)
            } catch {
                fresh.close()
                throw error
            }
        }
        let previous = connection.withLockedValue { current in
            defer { current = fresh }
            return current
        }
        previous?.close()
        return fresh
    }

    /// Forgets `nats` after a failure, so the next batch connects again.
    private func drop(_ nats: NATSConnection) {
        connection.withLockedValue { current in
            if current === nats { current = nil }
        }
        nats.close()
    }
}
