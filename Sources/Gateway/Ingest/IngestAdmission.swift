import Metrics
import Sinks
import Synchronization

/// Load shaping for the endpoints that carry agent output: refuse early, with the error body osquery
/// keeps its buffer for, before the machine is in trouble.
///
/// Two signals, both checked before a body is read, authenticated or inflated, so a refusal costs
/// almost nothing and `distributed/read` (never shaped) stays cheap:
/// - **the spool's high-water mark**: past `highWater` unsent bytes, logger batches are refused
///   while distributed results (answers an operator is waiting for, small) are still taken up to the
///   spool's hard limit. Sinks drain the spool, the mark is crossed downwards, batches flow again;
///   osquery has kept every line in its own buffer meanwhile (`--buffered_log_max`).
/// - **saturation**: at most `maxConcurrent` logger and distributed-write requests are read and stored
///   at once. Past it the gateway is behind (CPU or disk), and every extra request would only add
///   memory and latency for all; the refused agent retries at its next period. A distributed write
///   in front of a backend gives its slot back once it is read and decoded, before the backend is
///   asked (`OsqueryRoutes.distributedWrite`): waiting on the backend costs the gateway no CPU or
///   disk, and is bounded by `upstream.max_concurrent` instead.
///
/// Both refusals are `OsqueryError.spoolFull`/`.busy`: an `error` body with Retry-After, never an
/// empty body and never `node_invalid`.
final class IngestAdmission: Sendable {
    struct Configuration: Sendable, Equatable {
        /// Unsent spool bytes past which logger batches are refused (`limits.spool_high_water`).
        var highWater: Int
        /// Logger and distributed-write requests handled at once (`limits.max_concurrent_ingest`).
        var maxConcurrent: Int
    }

    /// Which endpoint asks.
    enum Kind: Sendable { case logger, distributedWrite }

    let configuration: Configuration
    private let spool: Spool
    private let inFlight = Atomic<Int>(0)
    private let shedHighWater = Counter(label: "gateway_ingest_refused", dimensions: [("reason", "spool_high_water")])
    private let shedSaturated = Counter(label: "gateway_ingest_refused", dimensions: [("reason", "saturated")])

    init(configuration: Configuration, spool: Spool) {
        self.configuration = configuration
        self.spool = spool
    }

    /// Runs `body` if the request is admitted, holding one of the `maxConcurrent` slots meanwhile.
    /// - Throws: `OsqueryError.spoolFull` past the high-water mark (logger only), `OsqueryError.busy`
    ///   when every slot is taken; otherwise whatever `body` throws.
    func admitted<T: Sendable>(_ kind: Kind, _ body: () async throws -> T) async throws -> T {
        if kind == .logger, spool.unsentSize > configuration.highWater {
            shedHighWater.increment()
            throw OsqueryError.spoolFull("the gateway's spool is past its high-water mark while sinks catch up; keep the logs and retry")
        }
        guard inFlight.add(1, ordering: .relaxed).newValue <= configuration.maxConcurrent else {
            inFlight.subtract(1, ordering: .relaxed)
            shedSaturated.increment()
            throw OsqueryError.busy("the gateway is saturated right now; keep the logs and retry")
        }
        defer { inFlight.subtract(1, ordering: .relaxed) }
        return try await body()
    }

    /// Requests holding a slot now.
    var concurrent: Int { inFlight.load(ordering: .relaxed) }
}
