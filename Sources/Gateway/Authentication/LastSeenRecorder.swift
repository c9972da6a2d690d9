import Foundation
import Logging
import NIOConcurrencyHelpers
import ServiceLifecycle
import Sinks

/// Batches `last_seen` updates: requests note the time in memory, and this service writes them all
/// every `interval` (and once more on shutdown), instead of one database write per request.
final class LastSeenRecorder: Service, Sendable {
    private let pending = NIOLockedValueBox([String: Date]())
    private let interval: Duration
    private let logger: Logger
    private let store: any NodeStore

    init(store: any NodeStore, interval: Duration = .seconds(10), logger: Logger) {
        self.store = store
        self.interval = interval
        self.logger = logger
    }

    /// Notes that `nodeID` was seen now.
    func record(_ nodeID: String) {
        let now = Date()
        pending.withLockedValue { $0[nodeID] = now }
    }

    /// Writes what is pending.
    func flush() async {
        let batch = pending.withLockedValue { pending in
            defer { pending.removeAll() }
            return pending
        }
        guard !batch.isEmpty else { return }
        do {
            try await store.recordLastSeen(batch)
        } catch {
            logger.warning("could not record last_seen", metadata: ["gw.error": "\(error)", "gw.nodes": "\(batch.count)"])
            pending.withLockedValue { pending in pending.merge(batch) { newer, _ in newer } }
        }
    }

    func run() async throws {
        while ServiceLoop.keepRunning {
            await ServiceLoop.pause(interval)
            await flush()
        }
        await flush()
    }
}
