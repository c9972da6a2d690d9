import Foundation
import NIOCore
import NIOPosix

/// What a fleet run measured, for the report.
struct FleetResult {
    struct Storm {
        /// Seconds after the fleet's start when every host was told to restart.
        var startElapsed: Double
        var startUptime: UInt64
        var startPoint: RunPoint
        /// Highest server RSS sampled from the storm's start to the end.
        var serverPeakRSS: Int
    }

    struct Idle {
        /// At the end of the run.
        var counters: IdleCounters
        /// Open once the opening burst was over, when the server's RSS was read.
        var openAfterOpening: Int
        var serverBefore: ProcessSample?
        var serverAfter: ProcessSample?
        var openingSeconds: Double
    }

    var start: RunPoint
    /// The point after the warmup (nil when the run was not longer than the warmup).
    var warm: RunPoint?
    var end: RunPoint
    var serverPeakRSS: Int
    var storm: Storm?
    var idle: Idle?
}

/// The fleet mode's timeline, on the main thread: open the idle connections, start every host
/// within the splay, then once a second sample the server (for its peak RSS), take the point that ends
/// the warmup, start the storm once every host is enrolled, and print progress; stop at `--duration`.
///
/// The event loops are not shut down at the end: the process exits with its connections open, and
/// the kernel closes them, which costs the report nothing.
struct FleetRun {
    let settings: FleetSettings
    let target: ServerTarget
    let threads: Int
    let serverPID: String?
    let quiet: Bool

    func run() throws -> FleetResult {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
        let loops = Array(group.makeIterator())
        var sampler = ServerSampler(pid: serverPID)
        let idle = try openIdleConnections(on: loops, sampler: &sampler)

        let fleets = loops.enumerated().map { index, loop in
            LoopFleet(loop: loop, settings: settings, target: target,
                      hostIndices: Array(stride(from: index, to: settings.hosts, by: loops.count)),
                      seed: settings.seed &+ UInt64(index) &* 0x9E37_79B9)
        }
        let t0 = NIODeadline.now()
        func elapsed() -> Double { Double((NIODeadline.now() - t0).nanoseconds) / 1e9 }
        let start = RunPoint(elapsed: 0, counters: FleetCounters(), server: sampler.sample(), client: ProcFS.sample("self"))
        for fleet in fleets { fleet.loop.execute { fleet.start() } }

        var warm: RunPoint?
        var storm: FleetResult.Storm?
        var nextProgress = 10.0
        while elapsed() < settings.duration {
            Thread.sleep(forTimeInterval: min(1, max(0.01, settings.duration - elapsed())))
            let server = sampler.sample()
            let now = elapsed()
            let needsCounters = (warm == nil && now >= settings.warmup)
                || (settings.storm && storm == nil && now >= settings.warmup) || (!quiet && now >= nextProgress)
            guard needsCounters else { continue }
            let counters = try LoopSnapshots.fleets(fleets)
            let point = RunPoint(elapsed: now, counters: counters, server: server, client: ProcFS.sample("self"))
            if warm == nil, now >= settings.warmup, now < settings.duration { warm = point }
            if settings.storm, storm == nil, now >= settings.warmup, counters.enrolledHosts + counters.gaveUp >= settings.hosts {
                storm = FleetResult.Storm(startElapsed: now, startUptime: NIODeadline.now().uptimeNanoseconds,
                                          startPoint: point, serverPeakRSS: 0)
                sampler.mark()
                let window = settings.stormWindow
                for fleet in fleets { fleet.loop.execute { fleet.beginStorm(window: window) } }
                progress("t=\(Int(now))s storm: every host restarts within \(Int(settings.stormWindow))s")
            }
            if !quiet, now >= nextProgress {
                nextProgress += 10
                progress(Self.progressLine(point, start: start))
            }
        }

        let server = sampler.sample()
        let end = RunPoint(elapsed: elapsed(), counters: try LoopSnapshots.fleets(fleets), server: server, client: ProcFS.sample("self"))
        storm?.serverPeakRSS = sampler.peakRSSSinceMark
        var idleResult = idle
        if let pools = idle?.pools { idleResult?.result.counters = try LoopSnapshots.idle(pools) }
        return FleetResult(start: start, warm: warm, end: end, serverPeakRSS: sampler.peakRSS, storm: storm, idle: idleResult?.result)
    }

    /// Opens `--idle` connections (spread over the loops) and waits, up to two minutes, until every one
    /// is open or has failed, so the run's CPU figures do not include their handshakes.
    private func openIdleConnections(on loops: [any EventLoop], sampler: inout ServerSampler) throws
        -> (pools: [IdlePool], result: FleetResult.Idle)?
    {
        guard settings.idle > 0 else { return nil }
        let before = sampler.sample()
        let started = NIODeadline.now()
        let pools = loops.enumerated().map { index, loop in
            IdlePool(loop: loop, target: target, count: LoopSnapshots.share(settings.idle, index, of: loops.count),
                     reopen: settings.idleReopen)
        }
        for pool in pools { pool.loop.execute { pool.pump() } }
        let limit = started + .seconds(120)
        repeat {
            Thread.sleep(forTimeInterval: 0.25)
            _ = sampler.sample()
        } while try !LoopSnapshots.idleSettled(pools) && NIODeadline.now() < limit
        let seconds = Double((NIODeadline.now() - started).nanoseconds) / 1e9
        // A moment for the server to finish its side of the last handshakes before its RSS is read.
        Thread.sleep(forTimeInterval: 1)
        let after = sampler.sample()
        let counters = try LoopSnapshots.idle(pools)
        progress("idle: \(counters.open) of \(counters.target) connections open after \(Int(seconds))s (\(counters.failed) failed)")
        return (pools, FleetResult.Idle(counters: counters, openAfterOpening: counters.open, serverBefore: before, serverAfter: after, openingSeconds: seconds))
    }

    private static func progressLine(_ point: RunPoint, start: RunPoint) -> String {
        let c = point.counters
        var line = "t=\(Int(point.elapsed))s sent=\(c.sent) ok=\(c.ok) failed=\(c.failed) enrolled=\(c.enrolledHosts)"
        line += " late=\(c.schedule.late) overdue=\(c.schedule.overdue)"
        if let server = point.server, let first = start.server, point.elapsed > 0 {
            let cores = (server.cpuSeconds - first.cpuSeconds) / point.elapsed
            line += " server_cores=\(Format.fixed(cores, 2)) server_rss=\(Format.mib(server.rssBytes))MiB"
        }
        if let client = point.client, let first = start.client, point.elapsed > 0 {
            line += " client_cores=\(Format.fixed((client.cpuSeconds - first.cpuSeconds) / point.elapsed, 2))"
        }
        return line
    }

    private func progress(_ line: String) {
        guard !quiet else { return }
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }
}
