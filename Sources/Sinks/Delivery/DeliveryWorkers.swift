import Logging
import NIOConcurrencyHelpers
public import ServiceLifecycle

/// Runs one `DeliveryWorker` per sink as a single service, and lets sinks be added, replaced or
/// removed while it runs (SIGHUP): a removed sink's worker is stopped between batches (a cancelled
/// delivery is retried from the cursor by the next worker of that name, so nothing is lost), its
/// sink closed, and only then is its cursor dropped or handed to the replacement.
public final class DeliveryWorkers: Service, Sendable {
    private final class Running: Sendable {
        let worker: DeliveryWorker
        let stop: AsyncStream<Void>.Continuation
        let stopRequests: AsyncStream<Void>
        let done: AsyncStream<Void>.Continuation
        let finished: AsyncStream<Void>

        init(_ worker: DeliveryWorker) {
            self.worker = worker
            (stopRequests, stop) = AsyncStream.makeStream()
            (finished, done) = AsyncStream.makeStream()
        }
    }

    private let running = NIOLockedValueBox<[Running]>([])
    private let starts: AsyncStream<Running>.Continuation
    private let startRequests: AsyncStream<Running>

    public init(_ workers: [DeliveryWorker]) {
        (startRequests, starts) = AsyncStream.makeStream()
        setInitial(workers)
    }

    /// The workers `run` starts with.
    func setInitial(_ workers: [DeliveryWorker]) {
        running.withLockedValue { $0 = workers.map(Running.init) }
    }

    /// The workers running now, in the order they were configured or added.
    public var workers: [DeliveryWorker] { running.withLockedValue { $0.map(\.worker) } }

    public func run() async throws {
        let initial = running.withLockedValue { $0 }
        await withDiscardingTaskGroup { group in
            for entry in initial { group.addTask { await Self.drive(entry) } }
            // New workers arrive here until shutdown; running ones see the shutdown themselves.
            for await entry in startRequests.cancelOnGracefulShutdown() {
                group.addTask { await Self.drive(entry) }
            }
        }
    }

    /// Starts `worker` (its sink's cursor must already be in the spool).
    public func start(_ worker: DeliveryWorker) {
        let entry = Running(worker)
        running.withLockedValue { $0.append(entry) }
        starts.yield(entry)
    }

    /// Stops the worker of `sink` and waits until it has ended; returns it, or nil if none ran.
    @discardableResult
    public func stop(sink name: String) async -> DeliveryWorker? {
        guard let entry = running.withLockedValue({ running -> Running? in
            guard let index = running.firstIndex(where: { $0.worker.sink.name == name }) else { return nil }
            return running.remove(at: index)
        }) else { return nil }
        entry.stop.finish()
        for await _ in entry.finished {}
        return entry.worker
    }

    private static func drive(_ entry: Running) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { try? await entry.worker.run() }
            group.addTask { for await _ in entry.stopRequests {} }
            await group.next()
            group.cancelAll()
        }
        entry.done.finish()
    }
}
