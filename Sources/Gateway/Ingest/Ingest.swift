import Foundation
import Logging
import Sinks

/// The ingest step: a decoded body from an authenticated node becomes records, and the records
/// become durable in the pipeline.
///
/// The logger and distributed write endpoints both end here, as will anything else that takes
/// agent output (an upstream tee), so what a batch becomes, and what the agent hears when it cannot
/// be stored, are decided once. A refused batch is answered with the 503 body and Retry-After:
/// osquery keeps the batch and sends it again, so a full or failing disk loses nothing.
struct Ingest: Sendable {
    let pipeline: LogPipeline
    /// Load shaping in front of it; `nil` takes everything the spool takes (tests of the store alone).
    var admission: IngestAdmission? = nil

    /// Runs `body` (authenticate, read, decode, `append`) if load shaping admits the request.
    func admitted<T: Sendable>(_ kind: IngestAdmission.Kind, _ body: () async throws -> T) async throws -> T {
        guard let admission else { return try await body() }
        return try await admission.admitted(kind, body)
    }

    /// Stores `batch` as records of `node`; returns only once they are durable, and only then may
    /// the agent be told `{}`.
    /// - Parameters:
    ///   - receivedAt: when the request arrived; every record carries it.
    ///   - passedThrough: the upstream backend already has these records (a distributed write it
    ///     answered), so the upstream sink skips them.
    ///   - logger: the request's logger, for the line that says a batch was refused.
    /// - Throws: `OsqueryError.spoolFull` when the spool cannot take the records.
    func append(_ batch: some LogBatch, from node: NodeRecord, receivedAt: Date, passedThrough: Bool = false, logger: Logger) async throws {
        var records = batch.records(for: node, receivedAt: receivedAt)
        if passedThrough {
            for i in records.indices { records[i].passedThrough = true }
        }
        do {
            try await pipeline.append(records)
        } catch let error as SinkError {
            logger.error("log batch not durable; agent will retry", metadata: ["gw.error": "\(error)", "gw.records": "\(records.count)"])
            throw OsqueryError.spoolFull("logs cannot be stored right now; keep them and retry")
        }
    }
}
