import NIOCore

/// Everything measured at one moment of a run: the merged counters of every loop, the server's and
/// this process's `/proc` readings. Reports are differences between points.
struct RunPoint: Sendable {
    /// Seconds since the fleet started.
    var elapsed: Double
    var counters: FleetCounters
    var server: ProcessSample?
    var client: ProcessSample?
}

/// Reads the server's `/proc` entries and remembers the highest RSS seen, overall and since a mark
/// (the storm's start), because a peak between two points would otherwise be missed.
struct ServerSampler {
    let pid: String?
    private(set) var peakRSS = 0
    private(set) var peakRSSSinceMark = 0

    init(pid: String?) {
        self.pid = pid
    }

    mutating func sample() -> ProcessSample? {
        guard let pid, let sample = ProcFS.sample(pid) else { return nil }
        peakRSS = max(peakRSS, sample.rssBytes)
        peakRSSSinceMark = max(peakRSSSinceMark, sample.rssBytes)
        return sample
    }

    mutating func mark() {
        peakRSSSinceMark = 0
    }
}

/// The main thread's view of the loops: snapshots taken on each loop and merged.
enum LoopSnapshots {
    static func fleets(_ fleets: [LoopFleet]) throws -> FleetCounters {
        let futures = fleets.map { fleet in fleet.loop.submit { fleet.snapshot() } }
        return FleetCounters.merged(try futures.map { try $0.wait() })
    }

    static func idle(_ pools: [IdlePool]) throws -> IdleCounters {
        var total = IdleCounters()
        for pool in pools {
            total.merge(try pool.loop.submit { pool.counters }.wait())
        }
        return total
    }

    static func idleSettled(_ pools: [IdlePool]) throws -> Bool {
        try pools.allSatisfy { pool in try pool.loop.submit { pool.settled }.wait() }
    }

    static func handshakes(_ loops: [HandshakeLoop]) throws -> FleetCounters {
        let futures = loops.map { worker in worker.loop.submit { worker.counters } }
        return FleetCounters.merged(try futures.map { try $0.wait() })
    }

    /// `total` split into `parts` shares that differ by at most one; share `index`.
    static func share(_ total: Int, _ index: Int, of parts: Int) -> Int {
        total / parts + (index < total % parts ? 1 : 0)
    }
}
