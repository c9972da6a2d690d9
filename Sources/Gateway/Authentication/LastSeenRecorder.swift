import Foundation
import Logging
import NIOConcurrencyHelpers
import ServiceLifecycle

/// Batches `last_seen` updates: requests note the time in memory, and this service writes them all
/// every `interval` (and once more on shutdown), instead of one database write per request.
final class LastSeenRecorder: Service, Sendable {
    private let pending = NIOLockedValueBox([String: Date]())
    private let interval: Duration
    private let logger: Logger
    /// Set once the store exists (the store needs the recorder's owner first).
    private let storeBox = NIOLockedValueBox<(any NodeStore)?>(nil)

    init(interval: Duration = .seconds(10), logger: Logger) {
        self.interval = interval
        self.logger = logger
    }

    func attach(_ store: any NodeStore) {
        storeBox.withLockedValue { $0 = store }
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
        guard !batch.isEmpty, let store = storeBox.withLockedValue({ $0 }) else { return }
        do {
            try await store.recordLastSeen(batch)
        } catch {
            logger.warning("could not record last_seen", metadata: ["gw.error": "\(error)", "gw.nodes": "\(batch.count)"])
            pending.withLockedValue { pending in pending.merge(batch) { newer, _ in newer } }
        }
    }

    func run() async throws {
        while !Task.isShuttingDownGracefully {
            let interval = self.interval
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
            await flush()
        }
        await flush()
    }
}
