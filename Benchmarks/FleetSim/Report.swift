/// The run's results, printed as a table or, with `--json`, as one JSON object (snake_case keys;
/// absent keys mean "not measured", e.g. server figures without `--server-pid`). Memory is in bytes,
/// latency in milliseconds, CPU in seconds.
struct Report: Encodable {
    struct Latency: Encodable {
        var p50Ms: Double?
        var p99Ms: Double?
        var maxMs: Double?
    }

    struct EndpointRow: Encodable {
        var sent: Int
        var ok: Int
        var failed: Int
        var retries: Int
        var non2xx: Int
        /// Failure kind → attempts (only kinds that occurred).
        var failures: [String: Int]
        var latency: Latency
    }

    struct Requests: Encodable {
        var sent: Int
        var ok: Int
        var failed: Int
        var perSecond: Double?
    }

    /// Whether the client kept to the schedule ("requests sent match the schedule").
    struct Schedule: Encodable {
        var timersFired: Int
        var late: Int
        var lateShare: Double?
        var maxLagMs: Double
        var overdueAtEnd: Int
        var keptUp: Bool
    }

    struct Process: Encodable {
        var pid: String
        var cpuSeconds: Double?
        var coresUsed: Double?
        var rssStartBytes: Int?
        var rssEndBytes: Int?
        var rssPeakBytes: Int?
        /// VmHWM: the peak since the process started, not only during the run.
        var hwmBytes: Int?
        var openFilesEnd: Int?
        var threads: Int?
    }

    /// The steady-state window (after the warmup), where hosts per core comes from.
    struct Steady: Encodable {
        var fromSeconds: Double
        var seconds: Double
        var requests: Int
        var requestsPerSecond: Double?
        var requestsPerHostPerSecond: Double?
        /// From the schedule alone: 1/distributed_interval + log_share/logger_period (+ config refresh).
        var scheduledRequestsPerHostPerSecond: Double
        var serverCPUSeconds: Double?
        var serverCPUMsPerRequest: Double?
        /// 1 / (server CPU seconds per request × requests per host per second).
        var hostsPerServerCore: Double?
        var clientCoresUsed: Double?
        var lateShare: Double?
    }

    struct Storm: Encodable {
        var startedAtSeconds: Double?
        var restarted: Int
        var reenrolled: Int
        var gaveUp: Int
        var unfinished: Int
        var secondsUntilAllReenrolled: Double?
        var serverRSSPeakBytes: Int?
        var serverCPUSeconds: Double?
    }

    struct Idle: Encodable {
        var target: Int
        var established: Int
        var openAtEnd: Int
        var failed: Int
        var closedByServer: Int
        var reopened: Int
        var openingSeconds: Double
        var serverRSSDeltaBytes: Int?
        var serverBytesPerConnection: Double?
    }

    struct Handshakes: Encodable {
        var concurrency: Int
        var completed: Int
        var perSecond: Double?
        var perServerCPUSecond: Double?
        var perClientCPUSecond: Double?
    }

    var mode: String
    var elapsedSeconds: Double
    var hosts: Int
    var threads: Int
    var connections: String
    var requests: Requests
    var endpoints: [String: EndpointRow]
    var enrolledHostsAtEnd: Int?
    var gaveUp: Int?
    var configFailures: Int?
    var schedule: Schedule?
    var server: Process?
    var client: Process?
    var steady: Steady?
    var storm: Storm?
    var idle: Idle?
    var handshakes: Handshakes?
    var warnings: [String]
}

/// `a / b`, or nil when `b` is not positive (JSON has no NaN or infinity).
func ratio(_ a: Double, _ b: Double) -> Double? {
    b > 0 ? a / b : nil
}

extension Report {
    static func endpointRows(_ counters: FleetCounters) -> [String: EndpointRow] {
        var rows: [String: EndpointRow] = [:]
        for endpoint in Endpoint.allCases {
            let c = counters[endpoint]
            guard c.sent > 0 else { continue }
            var failures: [String: Int] = [:]
            for kind in FailureKind.allCases where c.failures[kind.rawValue] > 0 {
                failures[kind.name] = c.failures[kind.rawValue]
            }
            let ms = { (micros: Int?) in micros.map { Double($0) / 1000 } }
            rows[endpoint.name] = EndpointRow(
                sent: c.sent, ok: c.ok, failed: c.failed, retries: c.retries, non2xx: c.non2xx, failures: failures,
                latency: Latency(p50Ms: ms(c.latency.percentile(0.50)), p99Ms: ms(c.latency.percentile(0.99)),
                                 maxMs: c.latency.total > 0 ? Double(c.latency.maxMicros) / 1000 : nil))
        }
        return rows
    }

    /// A process's figures between two samples.
    static func process(pid: String, from start: ProcessSample?, to end: ProcessSample?, elapsed: Double, peak: Int?) -> Process? {
        guard start != nil || end != nil else { return nil }
        let cpu = start.flatMap { s in end.map { $0.cpuSeconds - s.cpuSeconds } }
        return Process(
            pid: pid, cpuSeconds: cpu, coresUsed: cpu.flatMap { ratio($0, elapsed) },
            rssStartBytes: start?.rssBytes, rssEndBytes: end?.rssBytes, rssPeakBytes: peak,
            hwmBytes: end?.peakRSSBytes, openFilesEnd: end?.openFiles, threads: end?.threads)
    }

    static func requests(_ counters: FleetCounters, elapsed: Double) -> Requests {
        Requests(sent: counters.sent, ok: counters.ok, failed: counters.failed, perSecond: ratio(Double(counters.sent), elapsed))
    }
}
