import ArgumentParser
import Foundation
import NIOCore

/// A span of time on the command line: `250ms`, `30s`, `5m`, `1h`, or a plain number of seconds
/// (osquery's own flags such as `--distributed_interval 60` are plain seconds, so both spellings work).
struct Interval: ExpressibleByArgument, CustomStringConvertible, Sendable, Equatable {
    var seconds: Double

    init(seconds: Double) {
        self.seconds = seconds
    }

    init?(argument: String) {
        let text = argument.trimmingCharacters(in: .whitespaces).lowercased()
        // "ms" before "s" and "m", so that 250ms is not read as 250m or 250 s.
        let units: [(suffix: String, scale: Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600)]
        var number = Substring(text)
        var scale = 1.0
        for unit in units where text.hasSuffix(unit.suffix) {
            number = text.dropLast(unit.suffix.count)
            scale = unit.scale
            break
        }
        guard let value = Double(number), value >= 0, value.isFinite else { return nil }
        seconds = value * scale
    }

    var description: String {
        seconds == seconds.rounded() ? "\(Int(seconds))s" : "\(seconds)s"
    }

    var timeAmount: TimeAmount { .fromSeconds(seconds) }
}

extension TimeAmount {
    /// A time amount from fractional seconds (timers here are computed in seconds, as osquery's flags are).
    static func fromSeconds(_ value: Double) -> TimeAmount {
        .nanoseconds(Int64((max(0, value) * 1e9).rounded()))
    }
}

/// How many connections a host leaves open between requests.
enum ConnectionMode: String, ExpressibleByArgument, CaseIterable, Sendable {
    /// osquery 5.23: each component (config, logger, distributed) drops its previous connection only
    /// when it starts its next request, so a host holds up to three idle connections.
    case perComponent = "per-component"
    /// One previous connection per host, for fleets that would not fit the open-file limit otherwise.
    case perHost = "per-host"
    /// Close right after the response: isolates the cost of requests from the cost of idle connections.
    case close
}

/// What the run measures.
enum RunMode: String, ExpressibleByArgument, CaseIterable, Sendable {
    /// Hosts behaving as osquery 5.23 does.
    case fleet
    /// Closed loop of new connection, one distributed read, close: requests per server CPU second.
    case handshakes
}

/// The request paths (osqueryd `--*_tls_endpoint` flags), prefixed with the URL's path.
struct EndpointPaths: Sendable {
    var enroll = "/enroll"
    var config = "/config"
    var logger = "/logger"
    var distributedRead = "/distributed/read"
    var distributedWrite = "/distributed/write"

    func path(_ endpoint: Endpoint) -> String {
        switch endpoint {
        case .enroll: enroll
        case .config: config
        case .logger: logger
        case .distributedRead: distributedRead
        case .distributedWrite: distributedWrite
        }
    }
}

/// Everything a host needs to behave like osqueryd with the given flags; immutable once the run starts.
struct FleetSettings: Sendable {
    var hosts = 1000
    /// Seconds from the first host's start to the end of the run.
    var duration = 150.0
    /// Seconds excluded from the steady-state window (the splay: every host has started by then).
    var warmup = 30.0
    var splay = 30.0
    /// osquery `--distributed_interval`; 0 turns distributed reads off (osquery's default is off).
    var distributedInterval = 60.0
    /// osquery `--logger_tls_period`.
    var loggerPeriod = 4.0
    /// Share of logger periods in which a host has new result lines.
    var logShare = 0.25
    /// Result lines a host gains in such a period.
    var logLines = 10
    /// osquery `--logger_tls_max_lines`.
    var loggerMaxLines = 1024
    /// osquery `--logger_tls_backoff_max` (seconds).
    var loggerBackoffMax = 3600.0
    /// osquery `--tls_enroll_max_attempts` (0 is forever).
    var enrollMaxAttempts = 12
    /// osquery `--tls_enroll_max_interval` (seconds).
    var enrollMaxInterval = 600.0
    /// osquery `--config_refresh` (0: config once at start, osquery's default).
    var configRefresh = 0.0
    /// osquery `--config_accelerated_refresh`, used after a failed refresh.
    var configAcceleratedRefresh = 300.0
    /// The client's fixed per-request deadline (16 s in osquery, docs/protocol.md#retries).
    var timeout = 16.0
    var connections = ConnectionMode.perComponent
    var storm = false
    /// Seconds within which every host restarts in a storm (default: one distributed interval).
    var stormWindow = 60.0
    var idle = 0
    var idleReopen = false
    var secret = ""
    /// osquery `--tls_enroll_override`.
    var secretField = "enroll_secret"
    var hostPrefix = "sim"
    var seed: UInt64 = 1
    var paths = EndpointPaths()
}
