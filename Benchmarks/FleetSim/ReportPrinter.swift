import Foundation

/// Number formatting for the table and progress lines (no locale: the output is read by scripts too).
enum Format {
    static func fixed(_ value: Double, _ decimals: Int) -> String {
        String(format: "%.\(decimals)f", value)
    }

    static func optional(_ value: Double?, _ decimals: Int) -> String {
        value.map { fixed($0, decimals) } ?? "-"
    }

    static func percent(_ share: Double) -> String {
        fixed(share * 100, 2) + "%"
    }

    static func mib(_ bytes: Int) -> String {
        fixed(Double(bytes) / 1_048_576, 1)
    }

    static func pad(_ text: String, _ width: Int) -> String {
        text.count >= width ? text : String(repeating: " ", count: width - text.count) + text
    }

    static func padRight(_ text: String, _ width: Int) -> String {
        text.count >= width ? text : text + String(repeating: " ", count: width - text.count)
    }
}

/// The report as JSON (`--json`) or as a table for people.
enum ReportPrinter {
    static func json(_ report: Report) throws -> String {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.sortedKeys]
        return String(decoding: try encoder.encode(report), as: UTF8.self)
    }

    static func table(_ report: Report) -> String {
        var out: [String] = []
        out.append("fleet-sim \(report.mode): \(report.hosts) hosts, \(Format.fixed(report.elapsedSeconds, 1)) s, \(report.threads) thread(s), \(report.connections) connections")
        let titles = ["sent", "ok", "failed", "retries", "non2xx", "p50 ms", "p99 ms", "max ms"]
        out.append(Format.padRight("endpoint", 18) + titles.map { Format.pad($0, 9) }.joined() + "  failures")
        for endpoint in Endpoint.allCases {
            guard let row = report.endpoints[endpoint.name] else { continue }
            var line = Format.padRight(endpoint.name, 18)
            line += [row.sent, row.ok, row.failed, row.retries, row.non2xx].map { Format.pad(String($0), 9) }.joined()
            line += [row.latency.p50Ms, row.latency.p99Ms, row.latency.maxMs].map { Format.pad(Format.optional($0, 2), 9) }.joined()
            line += "  " + row.failures.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            out.append(line)
        }
        let r = report.requests
        var total = Format.padRight("total", 18)
        total += [r.sent, r.ok, r.failed].map { Format.pad(String($0), 9) }.joined()
        total += "   \(Format.optional(r.perSecond, 1)) req/s"
        out.append(total)
        if let hosts = report.enrolledHostsAtEnd {
            out.append("hosts: \(hosts) enrolled at the end, \(report.gaveUp ?? 0) gave up enrolling, \(report.configFailures ?? 0) config failures (3 attempts each)")
        }
        if let s = report.schedule {
            var line = "schedule: \(s.timersFired) timers fired, \(s.late) late >1 s (\(Format.percent(s.lateShare ?? 0))), "
            line += "max lag \(Format.fixed(s.maxLagMs, 1)) ms, \(s.overdueAtEnd) overdue at end: "
            line += s.keptUp ? "the client kept up" : "THE CLIENT FELL BEHIND"
            out.append(line)
        }
        if let p = report.server { out.append(process("server (pid \(p.pid))", p)) }
        if let p = report.client { out.append(process("client", p)) }
        if let s = report.steady {
            let to = s.fromSeconds + s.seconds
            var line = "steady state (\(Format.fixed(s.fromSeconds, 0))-\(Format.fixed(to, 0)) s): \(s.requests) requests, "
            line += "\(Format.optional(s.requestsPerSecond, 1)) req/s, \(Format.optional(s.requestsPerHostPerSecond, 4)) req/host/s "
            line += "(schedule \(Format.fixed(s.scheduledRequestsPerHostPerSecond, 4)))"
            out.append(line)
            let hostsPerCore = s.hostsPerServerCore.map { Format.fixed($0, 0) } ?? "-"
            var cost = "  server \(Format.optional(s.serverCPUSeconds, 2)) CPU s, \(Format.optional(s.serverCPUMsPerRequest, 3)) ms CPU per request"
            cost += " -> \(hostsPerCore) hosts per server core (client \(Format.optional(s.clientCoresUsed, 2)) cores)"
            out.append(cost)
        }
        if let s = report.storm {
            let peak = s.serverRSSPeakBytes.map { Format.mib($0) } ?? "-"
            var line = "storm: started at \(Format.optional(s.startedAtSeconds, 1)) s, \(s.restarted) restarted, "
            line += "\(s.reenrolled) re-enrolled, \(s.gaveUp) gave up, \(s.unfinished) unfinished; "
            line += "all re-enrolled after \(Format.optional(s.secondsUntilAllReenrolled, 1)) s; "
            line += "server peak RSS \(peak) MiB, \(Format.optional(s.serverCPUSeconds, 2)) CPU s"
            out.append(line)
        }
        if let i = report.idle {
            let delta = i.serverRSSDeltaBytes.map { Format.mib($0) } ?? "-"
            let perConnection = i.serverBytesPerConnection.map { Format.fixed($0 / 1024, 1) } ?? "-"
            var line = "idle: \(i.openAtEnd) of \(i.target) open at the end (\(i.established) established, \(i.failed) failed, "
            line += "\(i.closedByServer) closed by the server, \(i.reopened) reopened); "
            line += "opening took \(Format.fixed(i.openingSeconds, 1)) s, server RSS +\(delta) MiB (\(perConnection) KiB per connection)"
            out.append(line)
        }
        if let h = report.handshakes {
            var line = "handshakes: \(h.completed) completed with \(h.concurrency) workers, \(Format.optional(h.perSecond, 1))/s, "
            line += "\(Format.optional(h.perServerCPUSecond, 1)) per server CPU s, \(Format.optional(h.perClientCPUSecond, 1)) per client CPU s"
            out.append(line)
        }
        for warning in report.warnings { out.append("warning: " + warning) }
        return out.joined(separator: "\n")
    }

    private static func process(_ label: String, _ p: Report.Process) -> String {
        var line = "\(label): \(Format.optional(p.cpuSeconds, 2)) CPU s (\(Format.optional(p.coresUsed, 2)) cores)"
        if let start = p.rssStartBytes, let end = p.rssEndBytes {
            line += ", RSS \(Format.mib(start)) -> \(Format.mib(end)) MiB"
        }
        if let peak = p.rssPeakBytes { line += ", peak \(Format.mib(peak)) MiB sampled" }
        if let hwm = p.hwmBytes { line += ", HWM \(Format.mib(hwm)) MiB" }
        if let files = p.openFilesEnd { line += ", \(files) open files" }
        if let threads = p.threads { line += ", \(threads) threads" }
        return line
    }
}
