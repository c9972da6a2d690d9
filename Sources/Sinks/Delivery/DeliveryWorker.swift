public import Foundation
public import Logging
import Metrics
import NIOConcurrencyHelpers
public import ServiceLifecycle

/// Drains one sink's share of the spool: reads from the sink's cursor, hands batches to the sink,
/// and moves the cursor only when the batch was delivered or dead-lettered.
///
/// Each sink has its own worker and cursor, so a slow or dead destination never delays agents or
/// the other sinks: it only falls behind, and the spool keeps what it has not taken yet.
public final class DeliveryWorker: Service, Sendable {
    /// What `/health` reports of this sink.
    public struct Status: Sendable {
        public enum State: String, Sendable {
            /// Caught up or delivering.
            case ok
            /// The last delivery failed; the batch is being retried.
            case retrying
            /// Failed five times in a row or more.
            case failing
        }
        public var state = State.ok
        public var lastError: String?
        public var lastErrorAt: Date?
        public var consecutiveFailures = 0
        /// Bytes of durable spool data this sink has not read yet (in the segment it is reading).
        public var lagBytes = 0
        /// Age of the oldest record of the batch being delivered; 0 when caught up.
        public var lagSeconds = 0.0
    }

    private let statusBox = NIOLockedValueBox(Status())
    /// This sink's state, last error and lag.
    public var status: Status { statusBox.withLockedValue { $0 } }

    private func failed(_ reason: String) {
        statusBox.withLockedValue { status in
            status.consecutiveFailures += 1
            status.state = status.consecutiveFailures >= 5 ? .failing : .retrying
            status.lastError = reason
            status.lastErrorAt = Date()
        }
    }

    private func succeeded() {
        statusBox.withLockedValue { status in
            status.consecutiveFailures = 0
            status.state = .ok
        }
    }

    public let sink: any Sink
    let match: SinkMatch
    let spool: Spool
    let deadLetter: DeadLetterFile
    let backoff: Backoff
    let logger: Logger
    /// How often an idle worker looks for new data.
    let pollInterval: Duration

    private let delivered: Counter
    private let retried: Counter
    private let rejected: Counter
    private let lagSeconds: Gauge
    private let lagBytes: Gauge

    public init(sink: any Sink, match: SinkMatch, spool: Spool, deadLetterPath: String, backoff: Backoff = Backoff(),
                pollInterval: Duration = .milliseconds(20), logger: Logger) {
        self.sink = sink
        self.match = match
        self.spool = spool
        self.deadLetter = DeadLetterFile(path: deadLetterPath)
        self.backoff = backoff
        self.pollInterval = pollInterval
        var logger = logger
        logger[metadataKey: "gw.sink"] = "\(sink.name)"
        self.logger = logger
        let dimensions = [("sink", sink.name)]
        delivered = Counter(label: "sink_delivered_records", dimensions: dimensions)
        retried = Counter(label: "sink_retried_batches", dimensions: dimensions)
        rejected = Counter(label: "sink_rejected_records", dimensions: dimensions)
        lagSeconds = Gauge(label: "sink_lag_seconds", dimensions: dimensions)
        lagBytes = Gauge(label: "sink_lag_bytes", dimensions: dimensions)
    }

    public func run() async throws {
        do {
            try await sink.healthCheck()
        } catch {
            logger.warning("sink health check failed; records stay in the spool until it recovers", metadata: ["gw.error": "\(error)"])
        }
        var position = spool.cursor(of: sink.name)
        var attempt = 0
        var lastTick = ContinuousClock.now
        var waitedAt: Spool.Position?
        let batching = sink.batching
        while ServiceLoop.keepRunning {
            let read: (records: [LogRecord], next: Spool.Position)
            do {
                read = try spool.read(from: position, maxRecords: batching.maxRecords, maxBytes: batching.maxBytes)
            } catch {
                failed("cannot read the spool: \(error)")
                logger.error("cannot read the spool", metadata: ["gw.error": "\(error)", "gw.position": "\(position)"])
                await pause(.seconds(1))
                continue
            }
            let durable = spool.durablePosition
            let lag = durable.segment == position.segment ? durable.offset - position.offset : 0
            lagBytes.record(lag)
            statusBox.withLockedValue { $0.lagBytes = lag }
            if read.records.isEmpty {
                lagSeconds.record(0)
                statusBox.withLockedValue { $0.lagSeconds = 0 }
                if ContinuousClock.now - lastTick >= .seconds(1) {
                    await sink.tick()
                    lastTick = .now
                }
                await pause(pollInterval)
                continue
            }
            let batch = match.matchesEverything ? read.records : read.records.filter(match.matches)
            if batch.isEmpty {
                position = read.next
                save(position)
                continue
            }
            // A partial batch may wait a little for more (HTTP sinks batch by time as well).
            if batching.maxWait > .zero, batch.count < batching.maxRecords, waitedAt != position,
                let oldest = batch.first?.receivedAt, Date().timeIntervalSince(oldest) < batching.maxWait.seconds
            {
                waitedAt = position
                await pause(batching.maxWait)
                continue
            }
            let age = Date().timeIntervalSince(batch[0].receivedAt)
            lagSeconds.record(age)
            statusBox.withLockedValue { $0.lagSeconds = age }
            switch await sink.deliver(batch) {
            case .delivered:
                succeeded()
                delivered.increment(by: batch.count)
                attempt = 0
                position = read.next
                save(position)
            case .retry(let reason, let after):
                failed(reason)
                retried.increment()
                let delay = backoff.delay(attempt: attempt, hint: after)
                attempt += 1
                logger.warning("delivery failed; retrying", metadata: [
                    "gw.reason": "\(reason)", "gw.attempt": "\(attempt)", "gw.records": "\(batch.count)", "gw.delay": "\(delay)",
                ])
                await pause(delay)
            case .rejected(let reason):
                do {
                    try deadLetter.write(batch, sink: sink.name, reason: reason)
                } catch {
                    failed("cannot write the dead-letter file: \(error)")
                    logger.error("cannot write the dead-letter file; retrying", metadata: ["gw.error": "\(error)"])
                    await pause(.seconds(1))
                    continue
                }
                rejected.increment(by: batch.count)
                logger.error("batch rejected; written to the dead-letter file", metadata: [
                    "gw.reason": "\(reason)", "gw.records": "\(batch.count)", "gw.dead_letter": "\(deadLetter.path)",
                ])
                attempt = 0
                position = read.next
                save(position)
            }
        }
    }

    private func save(_ position: Spool.Position) {
        do {
            try spool.commit(sink: sink.name, to: position)
        } catch {
            logger.error("cannot save the cursor", metadata: ["gw.error": "\(error)"])
        }
    }

    /// Sleeps, waking early when the service group shuts down or the task is cancelled.
    private func pause(_ duration: Duration) async {
        if duration <= .milliseconds(50) {
            // Short polls skip the graceful-shutdown handler; a cancelled sleep throws at once and
            // the loop's `keepRunning` check then ends the loop.
            try? await Task.sleep(for: duration)
        } else {
            await ServiceLoop.pause(duration)
        }
    }
}

extension Duration {
    var seconds: Double {
        let parts = components
        return Double(parts.seconds) + Double(parts.attoseconds) / 1e18
    }
}
