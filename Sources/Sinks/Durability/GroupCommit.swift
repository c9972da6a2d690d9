import NIOPosix

/// Shares one fsync among every writer whose write finished while the previous fsync ran.
///
/// One fsync costs milliseconds here, so an fsync per request would cap ingest at a few hundred
/// requests per second. Writers instead report the sequence number of their completed write and wait;
/// one sync runs at a time and covers every write that completed before it started, so it wakes every
/// waiter whose sequence number it covers. Writers that arrive during a sync are covered by the next one.
///
/// A sync that throws fails the waiters it covers and leaves `synced` where it was; the next waiter
/// starts a new sync. That new sync must not vouch for writes the failed one lost: its owner decides
/// what a failed fsync means (the spool discards the writes and checks each append against them).
actor GroupCommit {
    private let sync: @Sendable () throws -> Void
    private let window: Duration
    private var synced: UInt64 = 0
    private var syncing = false
    private var waiters: [(sequence: UInt64, continuation: CheckedContinuation<Void, any Error>)] = []

    /// - Parameters:
    ///   - window: how long a sync waits before starting, so more writers can join it.
    ///   - sync: makes every completed write durable; runs on NIO's blocking thread pool.
    init(window: Duration = .zero, sync: @escaping @Sendable () throws -> Void) {
        self.window = window
        self.sync = sync
    }

    /// Returns when the write numbered `sequence` (already completed) is durable.
    func waitUntilDurable(_ sequence: UInt64) async throws {
        if sequence <= synced { return }
        try await withCheckedThrowingContinuation { continuation in
            waiters.append((sequence, continuation))
            if !syncing { startSync() }
        }
    }

    private func startSync() {
        syncing = true
        let sync = self.sync
        let window = self.window
        Task {
            if window > .zero { try? await Task.sleep(for: window) }
            let target = self.claimTarget()
            let result: Result<Void, any Error>
            do {
                try await NIOThreadPool.singleton.runIfActive { try sync() }
                result = .success(())
            } catch {
                result = .failure(error)
            }
            self.finishSync(target: target, result: result)
        }
    }

    /// The highest sequence waiting now: the sync about to start covers all of them.
    private func claimTarget() -> UInt64 {
        waiters.map(\.sequence).max() ?? synced
    }

    private func finishSync(target: UInt64, result: Result<Void, any Error>) {
        syncing = false
        if case .success = result { synced = max(synced, target) }
        var remaining: [(sequence: UInt64, continuation: CheckedContinuation<Void, any Error>)] = []
        for waiter in waiters {
            if waiter.sequence <= target {
                waiter.continuation.resume(with: result)
            } else {
                remaining.append(waiter)
            }
        }
        waiters = remaining
        if !waiters.isEmpty { startSync() }
    }
}
