/// The osquery requests a host makes, in report order.
enum Endpoint: Int, CaseIterable, Sendable {
    case enroll, config, logger, distributedRead, distributedWrite

    var name: String {
        switch self {
        case .enroll: "enroll"
        case .config: "config"
        case .logger: "logger"
        case .distributedRead: "distributed_read"
        case .distributedWrite: "distributed_write"
        }
    }
}

/// Why one attempt failed, as the agent would see it (the HTTP status is never a reason:
/// docs/protocol.md#status-codes; it is only counted, as `non2xx`).
enum FailureKind: Int, CaseIterable, Sendable {
    /// TCP connect refused, reset or unreachable.
    case connect
    /// This process ran out of file descriptors (EMFILE/ENFILE): the client, not the server, failed.
    case fdLimit
    /// No local port left to connect from (EADDRNOTAVAIL).
    case ports
    /// The handshake failed, or the connection closed before it completed.
    case tls
    /// The connection closed or failed after the handshake, before the whole response arrived.
    case closed
    /// The request's deadline passed.
    case timeout
    /// A body that is not a JSON object.
    case badBody
    /// A JSON object with an `error` member.
    case errorBody
    /// `"node_invalid": true`: the host drops its key and enrolls again.
    case nodeInvalid
    /// An enroll answer without a non-empty `node_key` (or `id`).
    case noKey

    var name: String {
        switch self {
        case .connect: "connect"
        case .fdLimit: "fd_limit"
        case .ports: "ports"
        case .tls: "tls"
        case .closed: "closed"
        case .timeout: "timeout"
        case .badBody: "bad_body"
        case .errorBody: "error_body"
        case .nodeInvalid: "node_invalid"
        case .noKey: "no_key"
        }
    }

    /// Failures of the connection itself, which osquery retries once on a new connection at once.
    var isTransport: Bool {
        switch self {
        case .connect, .fdLimit, .ports, .tls, .closed, .timeout: true
        case .badBody, .errorBody, .nodeInvalid, .noKey: false
        }
    }
}

/// One endpoint's attempts. Every attempt is one new TLS connection and ends as exactly one of
/// `ok` or a failure kind, so `sent == ok + failed` once nothing is in flight.
struct EndpointCounters: Sendable {
    var sent = 0
    var ok = 0
    /// Attempts that were the agent's one immediate reconnect after a transport failure.
    var retries = 0
    /// Responses whose status was not 2xx (informational: osquery ignores the status).
    var non2xx = 0
    var failures = [Int](repeating: 0, count: FailureKind.allCases.count)
    /// Time from connect to the end of the response, for attempts that got a whole response.
    var latency = LatencyHistogram()

    var failed: Int { failures.reduce(0, +) }

    mutating func merge(_ other: EndpointCounters) {
        sent += other.sent
        ok += other.ok
        retries += other.retries
        non2xx += other.non2xx
        for i in failures.indices { failures[i] += other.failures[i] }
        latency.merge(other.latency)
    }
}

/// The "falling behind" check: every host timer (start, retry, period) records how late it fired.
struct ScheduleCounters: Sendable {
    /// Timers that fired.
    var fired = 0
    /// Timers that fired more than a second after their due time.
    var late = 0
    var maxLagMicros = 0
    /// Timers due more than a second ago that had not fired when the snapshot was taken.
    var overdue = 0

    mutating func merge(_ other: ScheduleCounters) {
        fired += other.fired
        late += other.late
        maxLagMicros = max(maxLagMicros, other.maxLagMicros)
        overdue += other.overdue
    }
}

/// The restart storm: every host drops its key and enrolls again.
struct StormCounters: Sendable {
    var restarted = 0
    var reenrolled = 0
    var gaveUp = 0
    /// Uptime (ns) of the last successful re-enrollment.
    var lastReenrolledAt: UInt64 = 0

    mutating func merge(_ other: StormCounters) {
        restarted += other.restarted
        reenrolled += other.reenrolled
        gaveUp += other.gaveUp
        lastReenrolledAt = max(lastReenrolledAt, other.lastReenrolledAt)
    }
}

/// Connections opened only to sit idle (`--idle`).
struct IdleCounters: Sendable {
    var target = 0
    var established = 0
    var failed = 0
    var closedByServer = 0
    var reopened = 0
    var open = 0

    mutating func merge(_ other: IdleCounters) {
        target += other.target
        established += other.established
        failed += other.failed
        closedByServer += other.closedByServer
        reopened += other.reopened
        open += other.open
    }
}

/// Everything one event loop counted; snapshots from all loops merge into the run's totals.
struct FleetCounters: Sendable {
    var endpoints = [EndpointCounters](repeating: EndpointCounters(), count: Endpoint.allCases.count)
    var schedule = ScheduleCounters()
    var storm = StormCounters()
    var idle = IdleCounters()
    /// Hosts holding a node key when the snapshot was taken.
    var enrolledHosts = 0
    /// Hosts that used up their enroll attempts (osqueryd exits then, docs/protocol.md#retries).
    var gaveUp = 0
    /// Hosts whose config failed three times in a row at least once.
    var configFailures = 0

    var sent: Int { endpoints.reduce(0) { $0 + $1.sent } }
    var ok: Int { endpoints.reduce(0) { $0 + $1.ok } }
    var failed: Int { endpoints.reduce(0) { $0 + $1.failed } }

    /// Read-only: mutate through `endpoints[endpoint.rawValue]`, which updates the histogram in place
    /// (a get/set subscript would copy its buckets on every request).
    subscript(endpoint: Endpoint) -> EndpointCounters { endpoints[endpoint.rawValue] }

    mutating func merge(_ other: FleetCounters) {
        for i in endpoints.indices { endpoints[i].merge(other.endpoints[i]) }
        schedule.merge(other.schedule)
        storm.merge(other.storm)
        idle.merge(other.idle)
        enrolledHosts += other.enrolledHosts
        gaveUp += other.gaveUp
        configFailures += other.configFailures
    }

    static func merged(_ parts: [FleetCounters]) -> FleetCounters {
        var total = FleetCounters()
        for part in parts { total.merge(part) }
        return total
    }
}
