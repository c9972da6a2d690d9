/// Guards against hostile or broken clients on the agent listener (the `limits` section).
struct RequestLimits: Sendable, Equatable {
    /// Largest request body accepted on the wire.
    var maxBody = 64 << 20
    /// Largest body after gzip inflation (gzip bombs stop here).
    var maxInflatedBody = 256 << 20
    /// Idle connections, and requests that stall, are closed after this long.
    var idleTimeout: Duration = .seconds(75)
    /// A whole request body must arrive within this long (a sender dribbling a large body is cut off).
    var bodyTimeout: Duration = .seconds(60)
    /// Bytes of request bodies held at once by every request together, past each request's first
    /// 64 KiB; over it, large bodies get a 503 error body (the agent retries later).
    var inFlightBytes = 1 << 30
    /// Pending connections the kernel queues before accepting (a restarting fleet reconnects at once).
    var backlog = 4096
    /// Share of `spool.max_size` of unsent bytes past which logger batches are refused (load shaping,
    /// `IngestAdmission`); distributed results are still taken up to the spool's limit.
    var spoolHighWater = 0.8
    /// Logger and distributed-write requests read and stored at once; more get a 503 error body.
    var maxConcurrentIngest = 256
}

extension RequestLimits {
    /// `limits`: `max_body`, `max_inflated_body`, `idle_timeout`, `body_timeout`, `in_flight_bytes`, `backlog`,
    /// `spool_high_water`, `max_concurrent_ingest`.
    init(reading section: MappingReader) {
        self.init()
        // An agent's enroll body alone is about 4 KiB; below these nothing an agent sends fits.
        if let value = section.size("max_body", minimum: 16 << 10) { maxBody = value }
        if let value = section.size("max_inflated_body", minimum: 16 << 10) { maxInflatedBody = value }
        if let value = section.duration("idle_timeout", minimum: .seconds(1)) { idleTimeout = value }
        if let value = section.duration("body_timeout", minimum: .seconds(1)) { bodyTimeout = value }
        if let value = section.size("in_flight_bytes", minimum: 1 << 20) { inFlightBytes = value }
        if let value = section.integer("backlog", in: 1...65_535) { backlog = value }
        if let value = section.percentage("spool_high_water") { spoolHighWater = value }
        if let value = section.integer("max_concurrent_ingest", in: 1...1_000_000) { maxConcurrentIngest = value }
        if maxInflatedBody < maxBody {
            section.reader.report(section.key("max_inflated_body"), section.node, "must be at least max_body")
        }
        if inFlightBytes < maxInflatedBody {
            section.reader.report(section.key("in_flight_bytes"), section.node, "must be at least max_inflated_body, or one large batch could never be read")
        }
    }
}
