import NIOConcurrencyHelpers
import NIOCore

/// A hard cap on requests in flight to the backend (`upstream.max_concurrent`, issue 10 item 7).
///
/// The connection pool's size is a soft limit: under load AsyncHTTPClient opens more connections
/// and queues requests without bound. With a slow backend every agent request would then wait out
/// the whole request timeout, and the queue (and the gateway's memory) would grow with the fleet.
/// Here a request past the cap waits at most `wait` for a slot, so a short burst evens out, and
/// then gets none: the caller answers as for an outage (read: no queries, write: spooled, config:
/// the last good one, enroll: an error body), never `node_invalid`. Waiters get slots first come,
/// first served.
///
/// A slot is handed from `release()` straight to the oldest waiter, so a stream of new requests
/// cannot overtake the ones already waiting.
final class RequestPermits: Sendable {
    let limit: Int

    private struct State: Sendable {
        var inUse = 0
        var lastID: UInt64 = 0
        /// Waiters by id; a waiter whose wait ran out is removed here (and skipped in `order`).
        var waiting: [UInt64: CheckedContinuation<Bool, Never>] = [:]
        var order = CircularBuffer<UInt64>()
    }

    private let state = NIOLockedValueBox(State())

    init(limit: Int) {
        self.limit = max(1, limit)
    }

    /// Takes a slot, waiting at most `wait` for one; false when none came free in time. Every
    /// `true` must be followed by one `release()`.
    func acquire(waiting wait: Duration) async -> Bool {
        let id = state.withLockedValue { state -> UInt64? in
            if state.inUse < limit {
                state.inUse += 1
                return nil
            }
            state.lastID &+= 1
            return state.lastID
        }
        guard let id else { return true }
        guard wait > .zero else { return false }
        return await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
            let takenNow = state.withLockedValue { state -> Bool in
                if state.inUse < limit {
                    state.inUse += 1
                    return true
                }
                state.waiting[id] = continuation
                state.order.append(id)
                return false
            }
            if takenNow {
                continuation.resume(returning: true)
                return
            }
            // Only past the cap: one sleeping task per waiting request, which ends its wait.
            Task { [self] in
                try? await Task.sleep(for: wait)
                self.expire(id)
            }
        }
    }

    /// Gives a slot back: to the oldest waiter, else to the pool.
    func release() {
        let next = state.withLockedValue { state -> CheckedContinuation<Bool, Never>? in
            while let id = state.order.popFirst() {
                if let continuation = state.waiting.removeValue(forKey: id) { return continuation }
            }
            state.inUse -= 1
            return nil
        }
        next?.resume(returning: true)
    }

    /// Slots taken now.
    var inUse: Int { state.withLockedValue { $0.inUse } }

    /// Ends the wait of `id` without a slot, if it is still waiting.
    private func expire(_ id: UInt64) {
        let continuation = state.withLockedValue { state -> CheckedContinuation<Bool, Never>? in
            let continuation = state.waiting.removeValue(forKey: id)
            // Ids of ended waits stay in `order` until a release passes them; keep that bounded.
            if state.order.count > 2 * state.waiting.count + 64 {
                let waiting = state.waiting
                state.order = state.order.filter { waiting[$0] != nil }
            }
            return continuation
        }
        continuation?.resume(returning: false)
    }
}
