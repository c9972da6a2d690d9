import Hummingbird
import Logging
import NIOConcurrencyHelpers
import NIOCore
import ServiceLifecycle

/// Serves a router on 127.0.0.1 until stopped: the running part `AWSStub` and `HTTPReceiver` share.
final class LocalHTTPServer: @unchecked Sendable {
    private(set) var port = 0
    private var group: ServiceGroup?
    private var task: Task<Void, any Error>?

    /// Starts on `requested` (0: any free port) and returns once the server listens.
    func start(_ router: Router<BasicRequestContext>, port requested: Int = 0, label: String) async {
        var logger = Logger(label: label)
        logger.logLevel = .critical
        let portBox = NIOLockedValueBox<CheckedContinuation<Int, Never>?>(nil)
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: requested)),
                              onServerRunning: { channel in portBox.withLockedValue { $0?.resume(returning: channel.localAddress!.port!); $0 = nil } },
                              logger: logger)
        let group = ServiceGroup(configuration: .init(services: [app], logger: logger))
        self.group = group
        port = await withCheckedContinuation { continuation in
            portBox.withLockedValue { $0 = continuation }
            task = Task { try await group.run() }
        }
    }

    func stop() async {
        await group?.triggerGracefulShutdown()
        _ = try? await task?.value
        group = nil
    }
}
