import struct Foundation.Date

/// The decisions of one sink's delivery loop, as a value with no I/O: which batch to send, when to
/// wait, back off, dead-letter or move the cursor.
///
/// `DeliveryWorker` carries out each returned `Action` and reports the result with the matching
/// event (`readCompleted`, `deliveryCompleted`, `cursorSaved`, ...), which returns the next action.
/// Keeping the decisions here (SwiftNIO and async-http-client style) lets tests drive every path, a
/// retry storm or a shutdown in the middle of a backoff, without a spool, a sink or a clock.
///
/// The rules it keeps:
/// - the cursor moves (`saveCursor`) only after the batch was delivered or dead-lettered (a partly
///   rejected batch: once its refused records are in the dead-letter file);
/// - a partial batch waits once, up to `maxWait`, for more records (only if its oldest record is
///   younger than that);
/// - a failed delivery backs off with `Backoff` (`Retry-After` wins) and the batch is read again from
///   the cursor, as the spool only appends it comes back the same, or longer if it was partial;
/// - a shutdown stops at once between steps, and after the cursor is saved when it comes during one.
struct DeliveryStateMachine {
    /// What the worker does next.
    enum Action {
        /// Read up to a batch from the spool at `position`, then `readCompleted` (or `readFailed`).
        case read(from: Spool.Position)
        /// Sleep, then `timerFired`: idle polling, a partial batch filling up, or after an error.
        case wait(Duration)
        /// Call the sink's `tick()`, then `tickCompleted`.
        case tick
        /// Hand the batch to the sink, then `deliveryCompleted`.
        case deliver([LogRecord])
        /// Sleep after failed delivery number `attempt` (from 1), then `timerFired`.
        case backOff(Duration, attempt: Int)
        /// Append the rejected batch to the dead-letter file, then `deadLetterWritten` or `deadLetterFailed`.
        case writeDeadLetter([LogRecord], reason: String)
        /// Save the cursor at `position`, then `cursorSaved` (whether or not the save worked).
        case saveCursor(Spool.Position)
        /// End the loop.
        case stop
    }

    /// A batch read from the spool and where the cursor goes once it is dealt with.
    private struct Batch {
        var records: [LogRecord]
        var next: Spool.Position
    }

    private enum State {
        case initial
        /// `read` was asked for; nothing is in flight that a shutdown would cut short.
        case reading
        /// Nothing to read: polling after `pollInterval`.
        case idle
        case ticking
        /// A partial batch waits for more records.
        case waitingForBatchToFill
        case delivering(Batch)
        case backingOff
        /// After a spool read or dead-letter write failed.
        case pausedAfterError
        case deadLettering(Batch)
        case committing(Spool.Position)
        case stopped
    }

    /// What the decisions depend on besides the spool's contents and the sink's answers.
    struct Policy: Sendable {
        var batching: Batching
        var match = SinkMatch()
        var backoff = Backoff()
        /// How often an idle worker looks for new data.
        var pollInterval: Duration = .milliseconds(20)
    }

    let policy: Policy
    var batching: Batching { policy.batching }
    private var match: SinkMatch { policy.match }
    private var backoff: Backoff { policy.backoff }
    private var pollInterval: Duration { policy.pollInterval }
    /// Where the sink reads next: moves only when a batch is delivered, dead-lettered or filtered out.
    private(set) var cursor: Spool.Position
    /// Failed deliveries of the current batch in a row.
    private(set) var attempt = 0
    private var state = State.initial
    private var lastTick: ContinuousClock.Instant
    /// Where a partial batch last waited, so it waits only once.
    private var waitedAt: Spool.Position?
    /// A shutdown came while a step was in flight: stop once it is done with.
    private var stopRequested = false

    init(cursor: Spool.Position, policy: Policy, now: ContinuousClock.Instant = .now) {
        self.cursor = cursor
        self.policy = policy
        self.lastTick = now
    }

    /// The first action: read from the cursor.
    mutating func start() -> Action {
        guard case .initial = state else { return unexpected("start") }
        return read()
    }

    /// The spool returned `records` (possibly none), and `next` is the position after them.
    /// - Parameters:
    ///   - now: for the once-a-second `tick` while idle.
    ///   - date: for the age of a partial batch (records carry wall-clock `receivedAt`).
    mutating func readCompleted(_ records: [LogRecord], next: Spool.Position, now: ContinuousClock.Instant = .now,
                                date: Date = Date()) -> Action {
        guard case .reading = state else { return unexpected("readCompleted") }
        if records.isEmpty {
            if now - lastTick >= .seconds(1) {
                state = .ticking
                return .tick
            }
            state = .idle
            return .wait(pollInterval)
        }
        let batch = match.matchesEverything ? records : records.filter { match.matches($0) }
        if batch.isEmpty {
            // Nothing here for this sink: move past it as if delivered.
            state = .committing(next)
            return .saveCursor(next)
        }
        if batching.maxWait > .zero, batch.count < batching.maxRecords, waitedAt != cursor,
            let oldest = batch.first?.receivedAt, date.timeIntervalSince(oldest) < batching.maxWait.seconds
        {
            waitedAt = cursor
            state = .waitingForBatchToFill
            return .wait(batching.maxWait)
        }
        state = .delivering(Batch(records: batch, next: next))
        return .deliver(batch)
    }

    /// The spool could not be read: try again in a second.
    mutating func readFailed() -> Action {
        guard case .reading = state else { return unexpected("readFailed") }
        state = .pausedAfterError
        return .wait(.seconds(1))
    }

    /// The sink's `tick()` returned.
    mutating func tickCompleted(now: ContinuousClock.Instant = .now) -> Action {
        guard case .ticking = state else { return unexpected("tickCompleted") }
        lastTick = now
        if stopRequested { return stop() }
        state = .idle
        return .wait(pollInterval)
    }

    /// A `wait` or `backOff` ended: read again from the cursor.
    mutating func timerFired() -> Action {
        switch state {
        case .idle, .waitingForBatchToFill, .backingOff, .pausedAfterError:
            return read()
        default:
            return unexpected("timerFired")
        }
    }

    /// The sink answered `outcome` for the batch being delivered.
    /// - Parameter jitter: the random fraction of the backoff ceiling to wait (full jitter).
    mutating func deliveryCompleted(_ outcome: DeliveryOutcome, jitter: Double = Double.random(in: 0...1)) -> Action {
        guard case .delivering(let batch) = state else { return unexpected("deliveryCompleted") }
        switch outcome {
        case .delivered:
            attempt = 0
            state = .committing(batch.next)
            return .saveCursor(batch.next)
        case .retry(_, let after):
            let delay = backoff.delay(attempt: attempt, hint: after, random: { _ in jitter })
            attempt += 1
            // The cursor stays: a restart sends this batch again.
            if stopRequested { return stop() }
            state = .backingOff
            return .backOff(delay, attempt: attempt)
        case .rejected(let reason):
            state = .deadLettering(batch)
            return .writeDeadLetter(batch.records, reason: reason)
        case .partlyRejected(let indices, let reason):
            let refused = indices.filter(batch.records.indices.contains).map { batch.records[$0] }
            guard !refused.isEmpty else { return deliveryCompleted(.delivered) }
            // Only the refused records are written; the cursor then moves past the whole batch.
            state = .deadLettering(Batch(records: refused, next: batch.next))
            return .writeDeadLetter(refused, reason: reason)
        }
    }

    /// The rejected batch is in the dead-letter file: move past it.
    mutating func deadLetterWritten() -> Action {
        guard case .deadLettering(let batch) = state else { return unexpected("deadLetterWritten") }
        attempt = 0
        state = .committing(batch.next)
        return .saveCursor(batch.next)
    }

    /// The dead-letter file could not be written: the batch stays, and is read and sent again.
    mutating func deadLetterFailed() -> Action {
        guard case .deadLettering = state else { return unexpected("deadLetterFailed") }
        if stopRequested { return stop() }
        state = .pausedAfterError
        return .wait(.seconds(1))
    }

    /// The cursor save is done. A failed save was logged by the worker; the cursor moves on in memory
    /// anyway, and the next save writes it.
    mutating func cursorSaved() -> Action {
        guard case .committing(let next) = state else { return unexpected("cursorSaved") }
        cursor = next
        if stopRequested { return stop() }
        return read()
    }

    /// The service group is shutting down, or the task was cancelled.
    /// - Returns: `.stop` between steps; nil while a tick, delivery, dead-letter write or cursor save
    ///   is in flight: its event then returns `.stop` (after the cursor is saved, if it is to move).
    mutating func shutdown() -> Action? {
        switch state {
        case .initial, .reading, .idle, .waitingForBatchToFill, .backingOff, .pausedAfterError, .stopped:
            return stop()
        case .ticking, .delivering, .deadLettering, .committing:
            stopRequested = true
            return nil
        }
    }

    private mutating func read() -> Action {
        state = .reading
        return .read(from: cursor)
    }

    private mutating func stop() -> Action {
        state = .stopped
        return .stop
    }

    /// An event the current state cannot take: after `stop` every event stops again; anything else is
    /// a bug in the worker's loop.
    private func unexpected(_ event: String) -> Action {
        guard case .stopped = state else { preconditionFailure("DeliveryStateMachine: \(event) in the wrong state") }
        return .stop
    }
}

extension Duration {
    var seconds: Double {
        let parts = components
        return Double(parts.seconds) + Double(parts.attoseconds) / 1e18
    }
}
