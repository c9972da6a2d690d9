import Crypto
public import Foundation
public import Logging
import Metrics
import NIOConcurrencyHelpers
import NIOCore
import ServiceLifecycle

/// The one entry point routes hand log records to: the spool in front, one delivery worker per sink
/// behind it.
///
/// `append(_:)` returns once the records are durable in the spool; only then may the agent be told
/// its batch was accepted. Delivery happens later and separately, per sink (`DeliveryWorker`).
///
/// osquery resends a request once after a broken connection (docs/protocol.md#retries), so a batch
/// can arrive twice although the first copy was stored. An exact repeat (same node, same records)
/// within `resendWindow` of a stored batch is acknowledged without being stored again.
///
/// ```swift
/// let spool = try Spool(configuration: .init(directory: "data/spool"), sinks: ["files"])
/// let pipeline = LogPipeline(spool: spool, routes: [.init(sink: fileSink)], deadLetterDirectory: "data/deadletter", logger: logger)
/// try await pipeline.append(records)   // now it is safe to answer {} to the agent
/// ```
public final class LogPipeline: Sendable {
    /// A sink and the records it takes.
    public struct Route: Sendable {
        public var sink: any Sink
        public var match: SinkMatch

        public init(sink: any Sink, match: SinkMatch = SinkMatch()) {
            self.sink = sink
            self.match = match
        }
    }

    public let spool: Spool
    /// One delivery worker per sink, as one service: run it in the service group.
    public let delivery: DeliveryWorkers
    let resendWindow: Duration
    private let deadLetterDirectory: String
    private let backoff: Backoff
    private let logger: Logger
    private let routesBox: NIOLockedValueBox<[Route]>

    /// The sinks and what each takes, as running now.
    public var routes: [Route] { routesBox.withLockedValue { $0 } }
    /// The delivery workers running now.
    public var workers: [DeliveryWorker] { delivery.workers }
    private let recent = NIOLockedValueBox([SHA256Digest: ContinuousClock.Instant]())
    private let appended = Counter(label: "spool_appended_records")
    private let refused = Counter(label: "spool_refused_batches")
    private let spoolBytes = Gauge(label: "spool_bytes")
    private let lastRefusalBox = NIOLockedValueBox<(at: Date, reason: String)?>(nil)

    /// When and why the spool last refused a batch (full, disk failing), for `/health`.
    public var lastRefusal: (at: Date, reason: String)? { lastRefusalBox.withLockedValue { $0 } }

    public init(spool: Spool, routes: [Route], deadLetterDirectory: String, resendWindow: Duration = .seconds(120),
                backoff: Backoff = Backoff(), logger: Logger) {
        self.spool = spool
        self.resendWindow = resendWindow
        self.deadLetterDirectory = deadLetterDirectory
        self.backoff = backoff
        self.logger = logger
        routesBox = NIOLockedValueBox(routes)
        delivery = DeliveryWorkers([])
        delivery.setInitial(routes.map(worker(for:)))
    }

    private func worker(for route: Route) -> DeliveryWorker {
        DeliveryWorker(sink: route.sink, match: route.match, spool: spool,
                       deadLetterPath: deadLetterDirectory + "/" + route.sink.name + ".jsonl", backoff: backoff, logger: logger)
    }

    /// Adds a sink while the pipeline runs. A sink whose cursor is still in the spool (it ran before
    /// under this name) goes on from it; a new one starts at the oldest data the spool holds.
    public func add(_ route: Route) {
        spool.addSink(route.sink.name)
        routesBox.withLockedValue { $0.append(route) }
        delivery.start(worker(for: route))
    }

    /// Removes a sink while the pipeline runs: its worker stops, the sink is closed, and unless
    /// `keepingCursor` (the sink is being replaced under the same name) its cursor is dropped, so
    /// the spool no longer keeps data for it.
    public func remove(sink name: String, keepingCursor: Bool = false) async {
        await delivery.stop(sink: name)
        let removed = routesBox.withLockedValue { routes -> Route? in
            guard let index = routes.firstIndex(where: { $0.sink.name == name }) else { return nil }
            return routes.remove(at: index)
        }
        await removed?.sink.close()
        if !keepingCursor { spool.removeSink(name) }
    }

    /// Stores `records` durably.
    ///
    /// - Important: The agent's success body goes out only after this returns.
    /// - Returns: false when the batch was an exact resend of one already stored (nothing written).
    /// - Throws: `SinkError` when the batch is not durable; the agent must then keep it.
    @discardableResult
    public func append(_ records: [LogRecord]) async throws -> Bool {
        guard !records.isEmpty else { return true }
        let digest = Self.digest(records)
        let now = ContinuousClock.now
        let seen = recent.withLockedValue { recent in
            if let expiry = recent[digest], expiry > now { return true }
            return false
        }
        if seen { return false }
        do {
            try await spool.append(records)
        } catch {
            refused.increment()
            lastRefusalBox.withLockedValue { $0 = (Date(), "\(error)") }
            throw error
        }
        appended.increment(by: records.count)
        spoolBytes.record(spool.size)
        let window = resendWindow
        recent.withLockedValue { recent in
            if recent.count > 100_000 { recent = recent.filter { $0.value > now } }
            recent[digest] = now + window
        }
        return true
    }

    /// Closes the spool, then every sink (after the workers have stopped).
    public func close() async {
        spool.close()
        for route in routes { await route.sink.close() }
    }

    /// Identifies a batch: node, kind, and each record's length and CRC-32C (hardware-fast), hashed
    /// with SHA-256. Only the same node's identical batch can match, so a collision could at worst
    /// drop a resend of that node's own data.
    static func digest(_ records: [LogRecord]) -> SHA256Digest {
        var hasher = SHA256()
        hasher.update(data: Array(records[0].nodeID.utf8))
        hasher.update(data: [0])
        hasher.update(data: Array(records[0].kind.rawValue.utf8))
        var summary: [UInt32] = []
        summary.reserveCapacity(records.count * 2)
        for record in records {
            summary.append(UInt32(truncatingIfNeeded: record.json.readableBytes))
            summary.append(record.json.withUnsafeReadableBytes { CRC32C.checksum($0) })
        }
        summary.withUnsafeBytes { hasher.update(bufferPointer: $0) }
        return hasher.finalize()
    }
}
