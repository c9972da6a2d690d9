import NIOConcurrencyHelpers

/// How many agent connections are being served, and who waits for none to be left.
///
/// A count, not a collection: opening and closing a connection cost O(1) however many are open,
/// which is the point of serving connections outside a task group (see `AgentListener`).
final class ConnectionCount: Sendable {
    private struct State {
        var open = 0
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    private let state = NIOLockedValueBox(State())

    func opened() {
        state.withLockedValue { $0.open += 1 }
    }

    func closed() {
        let waiters = state.withLockedValue { state -> [CheckedContinuation<Void, Never>] in
            state.open -= 1
            guard state.open == 0 else { return [] }
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    /// The number of connections being served now.
    var current: Int { state.withLockedValue { $0.open } }

    /// Returns once no connection is left (at once if none is open).
    func drained() async {
        await withCheckedContinuation { continuation in
            let now = state.withLockedValue { state -> Bool in
                if state.open == 0 { return true }
                state.waiters.append(continuation)
                return false
            }
            if now { continuation.resume() }
        }
    }
}
