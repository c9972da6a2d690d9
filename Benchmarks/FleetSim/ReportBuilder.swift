/// Turns what a run measured into a `Report`, with the derived figures: the steady-state window,
/// hosts per server core, the storm's duration and the cost of idle connections.
///
/// Hosts per core comes from server CPU seconds per request at a load the client sustained (late
/// share under 1%, nothing overdue), not from a saturation point: a client's full handshake costs
/// about what the server's does, so one client core may not saturate a fast server core.
enum ReportBuilder {
    static func fleet(_ result: FleetResult, settings: FleetSettings, threads: Int, serverPID: String?,
                      warnings extra: [String]) -> Report {
        var warnings = extra
        let end = result.end
        let c = end.counters
        let lateShare = ratio(Double(c.schedule.late), Double(c.schedule.fired))
        let keptUp = (lateShare ?? 0) <= 0.01 && c.schedule.overdue == 0
        if !keptUp {
            warnings.append("the client fell behind its schedule (late share \(Format.percent(lateShare ?? 0)), \(c.schedule.overdue) timers overdue): server figures are for a lower load than configured; use more --threads or fewer hosts")
        }
        if c.sent > 0, Double(c.failed) > 0.01 * Double(c.sent) {
            warnings.append("\(c.failed) of \(c.sent) attempts failed: CPU per request includes failed attempts")
        }
        if serverPID == nil { warnings.append("no --server-pid: no server CPU, RSS or hosts per core") }

        var report = Report(
            mode: "fleet", elapsedSeconds: end.elapsed, hosts: settings.hosts, threads: threads,
            connections: settings.connections.rawValue, requests: Report.requests(c, elapsed: end.elapsed),
            endpoints: Report.endpointRows(c), enrolledHostsAtEnd: c.enrolledHosts, gaveUp: c.gaveUp,
            configFailures: c.configFailures,
            schedule: Report.Schedule(timersFired: c.schedule.fired, late: c.schedule.late, lateShare: lateShare,
                            maxLagMs: Double(c.schedule.maxLagMicros) / 1000, overdueAtEnd: c.schedule.overdue, keptUp: keptUp),
            server: serverPID.flatMap {
                Report.process(pid: $0, from: result.start.server, to: end.server, elapsed: end.elapsed, peak: result.serverPeakRSS)
            },
            client: Report.process(pid: "self", from: result.start.client, to: end.client, elapsed: end.elapsed, peak: nil),
            warnings: [])
        if !settings.storm {
            report.steady = steady(from: result.warm ?? result.start, to: end, settings: settings)
            if let cores = report.steady?.clientCoresUsed, cores > 0.9 * Double(threads) {
                warnings.append("the client used \(Format.fixed(cores, 2)) cores of its \(threads) threads: it was near its limit, check the late share")
            }
            if let window = report.steady?.seconds, settings.distributedInterval > 0 {
                let rounds = window / settings.distributedInterval
                if rounds < 0.95 || abs(rounds - rounds.rounded()) > 0.05 {
                    warnings.append("the steady window (\(Format.fixed(window, 0)) s) is not a whole number of distributed intervals: its request mix is skewed; use --duration = warmup + k × distributed interval")
                }
            }
        }
        if let storm = result.storm {
            report.storm = stormReport(storm, end: end)
        } else if settings.storm {
            warnings.append("the storm never started: not every host was enrolled after the warmup")
            report.storm = Report.Storm(restarted: 0, reenrolled: 0, gaveUp: 0, unfinished: settings.hosts)
        }
        if let unfinished = report.storm?.unfinished, unfinished > 0, result.storm != nil {
            warnings.append("\(unfinished) hosts had not re-enrolled when the run ended: use a longer --duration")
        }
        if let idle = result.idle { report.idle = idleReport(idle) }
        report.warnings = warnings
        return report
    }

    private static func steady(from start: RunPoint, to end: RunPoint, settings: FleetSettings) -> Report.Steady {
        let seconds = end.elapsed - start.elapsed
        let requests = end.counters.sent - start.counters.sent
        let cpu = start.server.flatMap { s in end.server.map { $0.cpuSeconds - s.cpuSeconds } }
        let perRequest = cpu.flatMap { ratio($0, Double(requests)) }
        let perHost = ratio(Double(requests), Double(settings.hosts) * seconds)
        var scheduled = settings.logShare / max(settings.loggerPeriod, 0.001)
        if settings.distributedInterval > 0 { scheduled += 1 / settings.distributedInterval }
        if settings.configRefresh > 0 { scheduled += 1 / settings.configRefresh }
        let hostsPerCore = perRequest.flatMap { cost in perHost.flatMap { rate in ratio(1, cost * rate) } }
        let clientCPU = start.client.flatMap { s in end.client.map { $0.cpuSeconds - s.cpuSeconds } }
        let fired = end.counters.schedule.fired - start.counters.schedule.fired
        return Report.Steady(
            fromSeconds: start.elapsed, seconds: seconds, requests: requests,
            requestsPerSecond: ratio(Double(requests), seconds), requestsPerHostPerSecond: perHost,
            scheduledRequestsPerHostPerSecond: scheduled, serverCPUSeconds: cpu,
            serverCPUMsPerRequest: perRequest.map { $0 * 1000 }, hostsPerServerCore: hostsPerCore,
            clientCoresUsed: clientCPU.flatMap { ratio($0, seconds) },
            lateShare: ratio(Double(end.counters.schedule.late - start.counters.schedule.late), Double(fired)))
    }

    private static func stormReport(_ storm: FleetResult.Storm, end: RunPoint) -> Report.Storm {
        let s = end.counters.storm
        let unfinished = max(0, s.restarted - s.reenrolled - s.gaveUp)
        let until: Double? = unfinished == 0 && s.reenrolled > 0 && s.lastReenrolledAt > storm.startUptime
            ? Double(s.lastReenrolledAt - storm.startUptime) / 1e9 : nil
        let cpu = storm.startPoint.server.flatMap { a in end.server.map { $0.cpuSeconds - a.cpuSeconds } }
        return Report.Storm(
            startedAtSeconds: storm.startElapsed, restarted: s.restarted, reenrolled: s.reenrolled, gaveUp: s.gaveUp,
            unfinished: unfinished, secondsUntilAllReenrolled: until,
            serverRSSPeakBytes: storm.serverPeakRSS > 0 ? storm.serverPeakRSS : nil, serverCPUSeconds: cpu)
    }

    private static func idleReport(_ idle: FleetResult.Idle) -> Report.Idle {
        let i = idle.counters
        let delta = idle.serverBefore.flatMap { b in idle.serverAfter.map { $0.rssBytes - b.rssBytes } }
        return Report.Idle(
            target: i.target, established: i.established, openAtEnd: i.open, failed: i.failed,
            closedByServer: i.closedByServer, reopened: i.reopened, openingSeconds: idle.openingSeconds,
            serverRSSDeltaBytes: delta,
            serverBytesPerConnection: delta.flatMap { ratio(Double($0), Double(idle.openAfterOpening)) })
    }

    static func handshakes(_ result: HandshakeResult, settings: FleetSettings, threads: Int, serverPID: String?,
                           warnings extra: [String]) -> Report {
        var warnings = extra
        let end = result.end
        let c = end.counters
        let server = serverPID.flatMap {
            Report.process(pid: $0, from: result.start.server, to: end.server, elapsed: end.elapsed, peak: result.serverPeakRSS)
        }
        let client = Report.process(pid: "self", from: result.start.client, to: end.client, elapsed: end.elapsed, peak: nil)
        if serverPID == nil { warnings.append("no --server-pid: no requests per server CPU second") }
        if let cores = client?.coresUsed, cores > 0.9 * Double(threads) {
            warnings.append("the client used \(Format.fixed(cores, 2)) cores of its \(threads) threads: it may have been the bottleneck; requests per server CPU second stays valid")
        }
        return Report(
            mode: "handshakes", elapsedSeconds: end.elapsed, hosts: 0, threads: threads, connections: "close",
            requests: Report.requests(c, elapsed: end.elapsed), endpoints: Report.endpointRows(c),
            server: server, client: client,
            handshakes: Report.Handshakes(
                concurrency: result.concurrency, completed: c.ok, perSecond: ratio(Double(c.ok), end.elapsed),
                perServerCPUSecond: server?.cpuSeconds.flatMap { ratio(Double(c.ok), $0) },
                perClientCPUSecond: client?.cpuSeconds.flatMap { ratio(Double(c.ok), $0) }),
            warnings: warnings)
    }
}
