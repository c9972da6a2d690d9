/// A log destination. Delivery workers hand it batches read from the spool.
///
/// A sink reports what happened instead of throwing: `delivered` advances its cursor, `retry` makes
/// the worker wait and send the same batch again, `rejected` sends the batch to the dead-letter file
/// and moves on (a destination that refuses data permanently must never stall the pipeline), and
/// `partlyRejected` does that for some of the batch's records only, the rest having been delivered.
///
/// ```swift
/// struct PrintSink: Sink {
///     let name = "print"
///     func deliver(_ batch: [LogRecord]) async -> DeliveryOutcome {
///         for record in batch { print(String(buffer: record.json)) }
///         return .delivered
///     }
/// }
/// ```
public protocol Sink: Sendable {
    /// The sink's configured name (cursor file, metrics, logs).
    var name: String { get }
    /// Batching limits for this sink's worker.
    var batching: Batching { get }
    /// Delivers `batch`, in order.
    func deliver(_ batch: [LogRecord]) async -> DeliveryOutcome
    /// Does what delivering does, without data: opens the folder, reaches the server.
    func healthCheck() async throws
    /// Called about once a second while the sink is idle (time-based rolling).
    func tick() async
    /// Flushes and closes files and connections.
    func close() async
}

/// How many records a worker hands a sink at once.
public struct Batching: Sendable {
    public var maxRecords: Int
    public var maxBytes: Int
    /// How long a partial batch may wait for more records (0: send what is there).
    public var maxWait: Duration

    public init(maxRecords: Int = 10_000, maxBytes: Int = 8 << 20, maxWait: Duration = .zero) {
        self.maxRecords = maxRecords
        self.maxBytes = maxBytes
        self.maxWait = maxWait
    }
}

extension Sink {
    public var batching: Batching { Batching() }
    public func healthCheck() async throws {}
    public func tick() async {}
    public func close() async {}
}

/// What became of one batch.
public enum DeliveryOutcome: Sendable, Equatable {
    /// Stored by the destination; the cursor moves past it.
    case delivered
    /// A temporary failure; the same batch is sent again, after `after` if the destination said so.
    case retry(reason: String, after: Duration?)
    /// Refused for good (e.g. HTTP 400); the batch goes to the dead-letter file with `reason`.
    case rejected(reason: String)
    /// Delivered, except the records at `indices` (positions in the batch handed to `deliver`),
    /// which were refused for good and go to the dead-letter file with `reason`; then the cursor
    /// moves past the whole batch. For a destination that judges records one by one (the upstream
    /// sink: one node's key refused, the other nodes' records taken; Kinesis, Firehose, NATS and
    /// PostgreSQL: one record too large or refused), so one record or node cannot stall or
    /// dead-letter the rest.
    case partlyRejected(indices: [Int], reason: String)
}
