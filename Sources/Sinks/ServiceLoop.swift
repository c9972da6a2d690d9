import ServiceLifecycle

/// The two rules every long-lived loop of the gateway follows, in one place.
///
/// A `ServiceGroup` stops its services in one of two ways: a graceful shutdown (SIGTERM) or, when a
/// service fails at start (a port already in use), by *cancelling* the others. A loop that checked
/// only `Task.isShuttingDownGracefully` and swallowed the sleep's `CancellationError` would spin on a
/// core for ever after a start failure, ignoring SIGTERM. So a loop asks `keepRunning` and sleeps
/// with `pause`, which both honour cancellation as well as graceful shutdown.
public enum ServiceLoop {
    /// False once the task is cancelled or its service group is shutting down.
    public static var keepRunning: Bool {
        !Task.isCancelled && !Task.isShuttingDownGracefully
    }

    /// Sleeps for `duration`, waking early on graceful shutdown or cancellation.
    /// - Returns: whether the loop should go on.
    @discardableResult
    public static func pause(_ duration: Duration) async -> Bool {
        do {
            try await cancelWhenGracefulShutdown { try await Task.sleep(for: duration) }
        } catch {
            return false
        }
        return keepRunning
    }
}
