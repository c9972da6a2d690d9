import Foundation
import Logging
import ServiceLifecycle
@testable import Sinks

/// Runs a real pipeline (spool plus one delivery worker per route) for the duration of `body`.
func withPipeline(
    _ routes: [LogPipeline.Route], directory: String = temporaryDirectory("pipeline"),
    backoff: Backoff = Backoff(base: .milliseconds(10), cap: .milliseconds(50)),
    _ body: (LogPipeline) async throws -> Void
) async throws {
    var logger = Logger(label: "pipeline")
    logger.logLevel = .critical
    let spool = try Spool(configuration: .init(directory: directory + "/spool", commitWindow: .zero), sinks: routes.map(\.sink.name))
    let pipeline = LogPipeline(spool: spool, routes: routes, deadLetterDirectory: directory + "/deadletter", backoff: backoff, logger: logger)
    let group = ServiceGroup(configuration: .init(services: [pipeline.delivery], logger: logger))
    let task = Task { try await group.run() }
    do {
        try await body(pipeline)
    } catch {
        await group.triggerGracefulShutdown()
        _ = try? await task.value
        await pipeline.close()
        throw error
    }
    await group.triggerGracefulShutdown()
    try await task.value
    await pipeline.close()
}

/// Polls `condition` until it holds or `timeout` passes.
func eventually(timeout: Duration = .seconds(15), _ condition: () async throws -> Bool) async rethrows -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        try? await Task.sleep(for: .milliseconds(20))
    }
    return try await condition()
}
