import NIOCore

/// What a host timer does when it fires. Timers carry a value, not a closure, so NIO's `@Sendable`
/// task only captures the host.
enum HostAction: Sendable {
    case start, restart, enroll, config, configRefresh, distributedRead, distributedWrite, logger

    /// The one timer slot the action uses: a host never has two timers of one job pending.
    var job: Int {
        switch self {
        case .start, .restart: 0
        case .enroll: 1
        case .config, .configRefresh: 2
        case .distributedRead, .distributedWrite: 3
        case .logger: 4
        }
    }

    static let jobCount = 5
}

/// The connection an osquery component leaves idle between its requests (osquery #7083,
/// docs/protocol.md#connections). Enrollment happens on the config component at start.
enum ConnectionSlot: Int {
    case config, logger, distributed
}

/// One emulated osqueryd: a small state value driven by timers on its fleet's event loop (no thread
/// and no task of its own). Lifecycle, timers, requests and enrollment are here; the config,
/// distributed and logger components are in SimHost+Components.swift.
///
/// Confined to its fleet's loop, hence `@unchecked Sendable`.
final class SimHost: @unchecked Sendable {
    let identity: HostIdentity
    let fleet: LoopFleet
    var settings: FleetSettings { fleet.settings }

    var nodeKey: String?
    /// Bumped when the agent stops or restarts: answers and timers of an older generation are dropped.
    private(set) var generation = 0
    /// The components run (after the first config answer or failure) until the agent stops.
    var componentsRunning = false
    private var enrolling = false
    private var enrollAttempts = 0
    private var keyWaiters: [() -> Void] = []
    /// Restarted by a storm and not yet enrolled again.
    private var inStorm = false
    private var timers = [Scheduled<Void>?](repeating: nil, count: HostAction.jobCount)
    private var dues = [NIODeadline?](repeating: nil, count: HostAction.jobCount)
    private var idleConnections: [(any Channel)?] = [nil, nil, nil]

    // Component state (SimHost+Components.swift).
    var configAttempts = 0
    var distributedAttempts = 0
    var writeAttempts = 0
    /// Query ids of writes that failed, merged into the next round's write.
    var pendingQueryIDs: [String] = []
    /// The logger's on-disk buffer: lines `logFirst ..< logFirst + logPending` wait to be sent.
    var logFirst = 0
    var logPending = 0
    var logFailures = 0

    init(identity: HostIdentity, fleet: LoopFleet) {
        self.identity = identity
        self.fleet = fleet
    }

    // MARK: - Lifecycle

    /// Starts the agent after a random share of the splay.
    func scheduleStart() {
        schedule(.start, in: fleet.random() * settings.splay)
    }

    /// A storm restart at a random moment within `window` seconds.
    func scheduleRestart(within window: Double) {
        schedule(.restart, in: fleet.random() * window)
    }

    /// osqueryd starting: enroll (through the first request that needs a key), then config.
    private func boot() {
        configAttempts = 0
        requestConfig()
    }

    /// The process going away: every timer but the lifecycle one is cancelled and every connection
    /// closed (the kernel closes an exiting process's sockets without a TLS close_notify).
    private func stop() {
        generation += 1
        for job in 1..<HostAction.jobCount {
            timers[job]?.cancel()
            timers[job] = nil
            dues[job] = nil
        }
        for slot in idleConnections.indices { closeIdle(slot) }
        keyWaiters = []
        enrolling = false
        componentsRunning = false
    }

    /// A restart that also throws the node key away (database wipe or `--enroll_always`); the logger's
    /// buffer survives, as it is on disk.
    private func restart() {
        stop()
        nodeKey = nil
        pendingQueryIDs = []
        logFailures = 0
        inStorm = true
        fleet.counters.storm.restarted += 1
        boot()
    }

    // MARK: - Timers

    func schedule(_ action: HostAction, in seconds: Double) {
        let job = action.job
        let due = NIODeadline.now() + .fromSeconds(seconds)
        timers[job]?.cancel()
        dues[job] = due
        let generation = self.generation
        timers[job] = fleet.loop.scheduleTask(deadline: due) { [self] in
            self.fire(action, due: due, generation: generation)
        }
    }

    private func fire(_ action: HostAction, due: NIODeadline, generation: Int) {
        // Start and restart are the process itself starting: never stale.
        guard action.job == 0 || generation == self.generation else { return }
        timers[action.job] = nil
        dues[action.job] = nil
        fleet.recordTimer(due: due)
        perform(action)
    }

    func perform(_ action: HostAction) {
        switch action {
        case .start: boot()
        case .restart: restart()
        case .enroll: enroll()
        case .config: requestConfig()
        case .configRefresh: configAttempts = 0; requestConfig()
        case .distributedRead: readDistributed()
        case .distributedWrite: writeDistributed()
        case .logger: flushLogs()
        }
    }

    /// Timers due more than a second before `now` that have not fired: the loop is behind.
    func overdueTimers(at now: NIODeadline) -> Int {
        dues.reduce(0) { count, due in
            guard let due, now - due > .seconds(1) else { return count }
            return count + 1
        }
    }

    // MARK: - Requests

    /// One osquery request: drop the component's previous connection, then send on a new one; a
    /// transport failure other than the deadline is retried once at once (docs/protocol.md#retries).
    /// `done` runs only if the host has not restarted meanwhile.
    func send(_ endpoint: Endpoint, slot: ConnectionSlot, body: ByteBuffer, _ done: @escaping (Verdict) -> Void) {
        let slotIndex = fleet.slotIndex(slot)
        if let slotIndex { closeIdle(slotIndex) }
        let request = fleet.target.request(path: settings.paths.path(endpoint), body: body,
                                           nodeKey: endpoint == .enroll ? nil : nodeKey)
        let deadline = NIODeadline.now() + .fromSeconds(settings.timeout)
        attempt(endpoint, request, slotIndex: slotIndex, deadline: deadline, isRetry: false, done)
    }

    private func attempt(_ endpoint: Endpoint, _ request: PreparedRequest, slotIndex: Int?, deadline: NIODeadline,
                         isRetry: Bool, _ done: @escaping (Verdict) -> Void) {
        let generation = self.generation
        fleet.counters.endpoints[endpoint.rawValue].sent += 1
        if isRetry { fleet.counters.endpoints[endpoint.rawValue].retries += 1 }
        Exchange.start(request, target: fleet.target, on: fleet.loop, deadline: deadline) { [self] outcome in
            switch outcome {
            case .failure(let kind):
                fleet.counters.endpoints[endpoint.rawValue].failures[kind.rawValue] += 1
                guard generation == self.generation else { return }
                if !isRetry, kind != .timeout, NIODeadline.now() < deadline {
                    attempt(endpoint, request, slotIndex: slotIndex, deadline: deadline, isRetry: true, done)
                } else {
                    done(.failed(kind))
                }
            case .response(let response):
                let verdict = Verdict.judge(response.body, endpoint: endpoint)
                fleet.record(endpoint, response: response, verdict: verdict)
                guard generation == self.generation else {
                    response.channel.closeWithoutTLSShutdown()
                    return
                }
                keep(response.channel, slotIndex: slotIndex)
                done(verdict)
            }
        }
    }

    private func keep(_ channel: any Channel, slotIndex: Int?) {
        guard let slotIndex else {
            channel.closeWithoutTLSShutdown()
            return
        }
        closeIdle(slotIndex)  // per-host mode: another component's connection may sit there
        idleConnections[slotIndex] = channel
    }

    private func closeIdle(_ slotIndex: Int) {
        idleConnections[slotIndex]?.closeWithoutTLSShutdown()
        idleConnections[slotIndex] = nil
    }

    // MARK: - Enrollment

    /// Runs `then` once the host holds a node key, enrolling first if it has none; every component
    /// waiting for a key shares one enroll loop, as osquery's do.
    func withKey(_ then: @escaping () -> Void) {
        if nodeKey != nil {
            then()
            return
        }
        keyWaiters.append(then)
        guard !enrolling else { return }
        enrolling = true
        enrollAttempts = 0
        enroll()
    }

    /// One enroll try. osquery (docs/protocol.md#enrollment, #retries): up to `--tls_enroll_max_attempts`
    /// tries (12, 0 is forever), waiting n² seconds after try n, capped by `--tls_enroll_max_interval`
    /// (600 s); a host that runs out exits, since its TLS logger cannot get a key.
    private func enroll() {
        enrollAttempts += 1
        send(.enroll, slot: .config, body: fleet.bodies.enroll(identity)) { [self] verdict in
            if case .enrolled(let key) = verdict {
                nodeKey = key
                enrolling = false
                if inStorm {
                    inStorm = false
                    fleet.counters.storm.reenrolled += 1
                    fleet.counters.storm.lastReenrolledAt = NIODeadline.now().uptimeNanoseconds
                }
                let waiters = keyWaiters
                keyWaiters = []
                for waiter in waiters { waiter() }
                return
            }
            if settings.enrollMaxAttempts > 0, enrollAttempts >= settings.enrollMaxAttempts {
                giveUp()
            } else {
                schedule(.enroll, in: min(Double(enrollAttempts * enrollAttempts), settings.enrollMaxInterval))
            }
        }
    }

    private func giveUp() {
        fleet.counters.gaveUp += 1
        if inStorm {
            inStorm = false
            fleet.counters.storm.gaveUp += 1
        }
        stop()
    }
}
