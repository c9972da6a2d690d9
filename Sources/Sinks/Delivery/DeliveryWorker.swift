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
///
/// What to do next is decided by a `DeliveryStateMachine`; the worker does the I/O, the status,
/// metrics and logs, and feeds each result back.
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
    let spool: Spool
    let deadLetter: DeadLetterFile
    /// Batching, routing, backoff and polling: what the delivery decisions depend on.
    let policy: DeliveryStateMachine.Policy
    let logger: Logger

    private let delivered: Counter
    private let retried: Counter
    private let rejected: Counter
    private let lagSeconds: Gauge
    private let lagBytes: Gauge

    public init(sink: any Sink, match: SinkMatch, spool: Spool, deadLetterPath: String, backoff: Backoff = Backoff(),
                pollInterval: Duration = .milliseconds(20), logger: Logger) {
        self.sink = sink
        self.spool = spool
        self.deadLetter = DeadLetterFile(path: deadLetterPath)
        policy = .init(batching: sink.batching, match: match, backoff: backoff, pollInterval: pollInterval)
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
        // The decisions are the state machine's; this loop only carries them out and reports back.
        var machine = DeliveryStateMachine(cursor: spool.cursor(of: sink.name), policy: policy)
        var action = machine.start()
        while true {
            switch action {
            case .read(let position):
                // Checked before every read, as between any two batches: shutdown or cancellation ends
                // the loop here, never between a delivery and its cursor save.
                guard ServiceLoop.keepRunning else {
                    action = machine.shutdown() ?? .stop
                    continue
                }
                if let batch = read(from: position, batching: machine.batching) {
                    action = machine.readCompleted(batch.records, next: batch.next)
                } else {
                    action = machine.readFailed()
                }
            case .wait(let duration), .backOff(let duration, _):
                await pause(duration)
                action = machine.timerFired()
            case .tick:
                await sink.tick()
                action = machine.tickCompleted()
            case .deliver(let batch):
                let outcome = await deliver(batch)
                action = machine.deliveryCompleted(outcome)
                report(outcome, of: batch, next: action)
            case .writeDeadLetter(let batch, let reason):
                action = writeDeadLetter(batch, reason: reason) ? machine.deadLetterWritten() : machine.deadLetterFailed()
            case .saveCursor(let position):
                save(position)
                action = machine.cursorSaved()
            case .stop:
                return
            }
        }
    }

    /// Reads a batch at `position` and records the lag; nil (logged, reported) when the spool fails.
    private func read(from position: Spool.Position, batching: Batching) -> (records: [LogRecord], next: Spool.Position)? {
        let result: (records: [LogRecord], next: Spool.Position)
        do {
            result = try spool.read(from: position, maxRecords: batching.maxRecords, maxBytes: batching.maxBytes)
        } catch {
            failed("cannot read the spool: \(error)")
            logger.error("cannot read the spool", metadata: ["gw.error": "\(error)", "gw.position": "\(position)"])
            return nil
        }
        let durable = spool.durablePosition
        let lag = durable.segment == position.segment ? durable.offset - position.offset : 0
        lagBytes.record(lag)
        statusBox.withLockedValue { $0.lagBytes = lag }
        if result.records.isEmpty {
            lagSeconds.record(0)
            statusBox.withLockedValue { $0.lagSeconds = 0 }
        }
        return result
    }

    private func deliver(_ batch: [LogRecord]) async -> DeliveryOutcome {
        let age = Date().timeIntervalSince(batch[0].receivedAt)
        lagSeconds.record(age)
        statusBox.withLockedValue { $0.lagSeconds = age }
        return await sink.deliver(batch)
    }

    /// Status, metrics and logs for what the sink answered (a rejection is reported once it is
    /// dead-lettered).
    private func report(_ outcome: DeliveryOutcome, of batch: [LogRecord], next: DeliveryStateMachine.Action) {
        switch outcome {
        case .delivered:
            succeeded()
            delivered.increment(by: batch.count)
        case .retry(let reason, _):
            failed(reason)
            retried.increment()
            if case .backOff(let delay, let attempt) = next {
                logger.warning("delivery failed; retrying", metadata: [
                    "gw.reason": "\(reason)", "gw.attempt": "\(attempt)", "gw.records": "\(batch.count)", "gw.delay": "\(delay)",
                ])
            }
        case .partlyRejected(let indices, _):
            succeeded()
            delivered.increment(by: batch.count - Set(indices).count)
        case .rejected:
            break
        }
    }

    /// Writes a rejected batch to the dead-letter file; false (logged, reported) when that fails.
    private func writeDeadLetter(_ batch: [LogRecord], reason: String) -> Bool {
        do {
            try deadLetter.write(batch, sink: sink.name, reason: reason)
        } catch {
            failed("cannot write the dead-letter file: \(error)")
            logger.error("cannot write the dead-letter file; retrying", metadata: ["gw.error": "\(error)"])
            return false
        }
        rejected.increment(by: batch.count)
        logger.error("batch rejected; written to the dead-letter file", metadata: [
            "gw.reason": "\(reason)", "gw.records": "\(batch.count)", "gw.dead_letter": "\(deadLetter.path)",
        ])
        return true
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
