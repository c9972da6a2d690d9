import Foundation
import Logging
import Metrics
import ServiceLifecycle

/// Drains one sink's share of the spool: reads from the sink's cursor, hands batches to the sink,
/// and moves the cursor only when the batch was delivered or dead-lettered.
///
/// Each sink has its own worker and cursor, so a slow or dead destination never delays agents or
/// the other sinks: it only falls behind, and the spool keeps what it has not taken yet.
public final class DeliveryWorker: Service, Sendable {
    let sink: any Sink
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
        while !Task.isShuttingDownGracefully {
            let read: (records: [LogRecord], next: Spool.Position)
            do {
                read = try spool.read(from: position, maxRecords: batching.maxRecords, maxBytes: batching.maxBytes)
            } catch {
                logger.error("cannot read the spool", metadata: ["gw.error": "\(error)", "gw.position": "\(position)"])
                await pause(.seconds(1))
                continue
            }
            let durable = spool.durablePosition
            lagBytes.record(durable.segment == position.segment ? durable.offset - position.offset : 0)
            if read.records.isEmpty {
                lagSeconds.record(0)
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
            lagSeconds.record(Date().timeIntervalSince(batch[0].receivedAt))
            switch await sink.deliver(batch) {
            case .delivered:
                delivered.increment(by: batch.count)
                attempt = 0
                position = read.next
                save(position)
            case .retry(let reason, let after):
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

    /// Sleeps, waking early when the service group shuts down.
    private func pause(_ duration: Duration) async {
        if duration <= .milliseconds(50) {
            try? await Task.sleep(for: duration)
        } else {
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: duration) }
        }
    }
}

extension Duration {
    var seconds: Double {
        let parts = components
        return Double(parts.seconds) + Double(parts.attoseconds) / 1e18
    }
}
