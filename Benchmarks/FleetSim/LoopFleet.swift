import NIOCore

/// The hosts of one event loop, with the counters they write. One loop (the default) drives the
/// whole fleet; with `--threads N` hosts are dealt round-robin to N fleets, which never share state,
/// so nothing needs a lock: the main thread reads a fleet only through `loop.submit`.
///
/// Confined to `loop`, hence `@unchecked Sendable`.
final class LoopFleet: @unchecked Sendable {
    let loop: any EventLoop
    let settings: FleetSettings
    let target: ServerTarget
    let bodies: RequestBodies
    var counters = FleetCounters()
    private var hosts: [SimHost] = []
    private var rng: SplitMix64

    init(loop: any EventLoop, settings: FleetSettings, target: ServerTarget, hostIndices: [Int], seed: UInt64) {
        self.loop = loop
        self.settings = settings
        self.target = target
        bodies = RequestBodies(secret: settings.secret, secretField: settings.secretField)
        rng = SplitMix64(seed: seed)
        hosts = hostIndices.map { SimHost(identity: HostIdentity(index: $0, prefix: settings.hostPrefix), fleet: self) }
    }

    /// Schedules every host's start within the splay. On the loop.
    func start() {
        for host in hosts { host.scheduleStart() }
    }

    /// Every host restarts, without its key, at a random moment within `window` seconds. On the loop.
    func beginStorm(window: Double) {
        for host in hosts { host.scheduleRestart(within: window) }
    }

    /// The counters so far, with the hosts' current state counted in. On the loop.
    func snapshot() -> FleetCounters {
        var snapshot = counters
        let now = NIODeadline.now()
        snapshot.enrolledHosts = hosts.reduce(0) { $0 + ($1.nodeKey == nil ? 0 : 1) }
        snapshot.schedule.overdue = hosts.reduce(0) { $0 + $1.overdueTimers(at: now) }
        return snapshot
    }

    /// A uniform number in 0..<1.
    func random() -> Double {
        Double.random(in: 0..<1, using: &rng)
    }

    /// Where a component keeps its previous connection: one per component as osquery 5.23 does, one
    /// per host, or none (closed after the response).
    func slotIndex(_ slot: ConnectionSlot) -> Int? {
        switch settings.connections {
        case .perComponent: return slot.rawValue
        case .perHost: return 0
        case .close: return nil
        }
    }

    /// A timer fired: late when more than a second after its due time (the client is falling behind).
    func recordTimer(due: NIODeadline) {
        let lag = NIODeadline.now() - due
        let micros = Int(lag.nanoseconds / 1000)
        counters.schedule.fired += 1
        if lag > .seconds(1) { counters.schedule.late += 1 }
        counters.schedule.maxLagMicros = max(counters.schedule.maxLagMicros, micros)
    }

    /// An attempt that got a whole response, judged by its body.
    func record(_ endpoint: Endpoint, response: Exchange.Response, verdict: Verdict) {
        let i = endpoint.rawValue
        if !(200..<300).contains(response.status) { counters.endpoints[i].non2xx += 1 }
        counters.endpoints[i].latency.record(micros: Int(response.latency.nanoseconds / 1000))
        switch verdict {
        case .failed(let kind): counters.endpoints[i].failures[kind.rawValue] += 1
        case .accepted, .enrolled: counters.endpoints[i].ok += 1
        }
    }
}

/// A small, fast, seedable generator (SplitMix64), so that `--seed` repeats a run's splay and log
/// pattern and no lock or system call sits on the hot path.
struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64

    init(seed: UInt64) {
        state = seed
    }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
