public import NIOCore

/// The one entry point routes hand log records to.
///
/// `append(_:)` returns only when every record is durable (written and fsynced) in every sink that
/// takes it; only then may the agent be told its batch was accepted. Until the spool exists
/// (issue #3), durability comes from the file sinks themselves, each with its own group commit.
///
/// ```swift
/// let pipeline = LogPipeline(sinks: [try FileSink(configuration: .init(name: "files", directory: dir))])
/// try await pipeline.append(records)   // now it is safe to answer {} to the agent
/// ```
public final class LogPipeline: Sendable {
    let sinks: [FileSink]

    /// - Parameter sinks: the sinks every record goes to.
    public init(sinks: [FileSink]) {
        self.sinks = sinks
    }

    /// Writes `records` durably to every sink.
    ///
    /// - Important: The agent's success body goes out only after this returns.
    /// - Throws: `SinkError` when any sink could not make the batch durable; the agent must then keep it.
    public func append(_ records: [LogRecord]) async throws {
        guard !records.isEmpty else { return }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for sink in sinks {
                group.addTask { try await sink.write(records) }
            }
            try await group.waitForAll()
        }
    }

    /// Closes every sink's files.
    public func close() async {
        for sink in sinks { await sink.close() }
    }
}
