import Foundation
import NIOCore
import NIOPosix

/// What the handshakes mode measured.
struct HandshakeResult {
    var concurrency: Int
    var start: RunPoint
    var end: RunPoint
    var serverPeakRSS: Int
}

/// `--mode handshakes`: enroll once (or take `--node-key`, e.g. for an nginx baseline that answers
/// every POST alike), then run `--concurrency` closed-loop workers, spread over the loops, for
/// `--duration`; the server's CPU seconds over the same span give requests per server CPU second.
struct HandshakeRun {
    let settings: FleetSettings
    let target: ServerTarget
    let threads: Int
    let concurrency: Int
    let nodeKey: String?
    let serverPID: String?

    func run() throws -> HandshakeResult {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
        let loops = Array(group.makeIterator())
        let key = try nodeKey ?? OneEnrollment.run(target: target, settings: settings, on: loops[0]).wait()
        let workers = loops.map { HandshakeLoop(loop: $0, target: target, settings: settings, nodeKey: key) }
        var sampler = ServerSampler(pid: serverPID)

        let start = RunPoint(elapsed: 0, counters: FleetCounters(), server: sampler.sample(), client: ProcFS.sample("self"))
        let t0 = NIODeadline.now()
        let end = t0 + .fromSeconds(settings.duration)
        let futures = workers.enumerated().map { index, worker in
            let count = LoopSnapshots.share(concurrency, index, of: workers.count)
            return worker.loop.flatSubmit { worker.start(workers: count, until: end) }
        }
        while NIODeadline.now() < end {
            Thread.sleep(forTimeInterval: min(1, max(0.01, Double((end - NIODeadline.now()).nanoseconds) / 1e9)))
            _ = sampler.sample()
        }
        // Workers start nothing after the deadline; the requests in flight then finish (and are
        // counted) before the server's CPU is read, so both cover the same requests.
        for future in futures { try future.wait() }
        let server = sampler.sample()
        let client = ProcFS.sample("self")
        let elapsed = Double((NIODeadline.now() - t0).nanoseconds) / 1e9
        let counters = try LoopSnapshots.handshakes(workers)
        return HandshakeResult(
            concurrency: concurrency, start: start,
            end: RunPoint(elapsed: elapsed, counters: counters, server: server, client: client),
            serverPeakRSS: sampler.peakRSS)
    }
}
