import NIOCore

/// `--mode handshakes`: a closed loop in which each worker opens a new TCP+TLS connection, POSTs one
/// small distributed read with an enrolled node key, reads the whole response and closes, then starts
/// again. It measures what a request costs when every request is a full handshake (osquery 5.23),
/// as requests per server CPU second.
///
/// Confined to `loop`, hence `@unchecked Sendable`.
final class HandshakeLoop: @unchecked Sendable {
    let loop: any EventLoop
    private let target: ServerTarget
    private let request: PreparedRequest
    private let timeout: Double
    private var end = NIODeadline.now()
    private var running = 0
    private let finished: EventLoopPromise<Void>
    private(set) var counters = FleetCounters()

    init(loop: any EventLoop, target: ServerTarget, settings: FleetSettings, nodeKey: String) {
        self.loop = loop
        self.target = target
        let bodies = RequestBodies(secret: settings.secret, secretField: settings.secretField)
        request = target.request(path: settings.paths.distributedRead, body: bodies.nodeKeyOnly(nodeKey), nodeKey: nodeKey)
        timeout = settings.timeout
        finished = loop.makePromise(of: Void.self)
    }

    /// Starts `workers` workers that run until `end`; the future completes when the last one stopped.
    /// On the loop.
    func start(workers: Int, until end: NIODeadline) -> EventLoopFuture<Void> {
        self.end = end
        running = workers
        if workers == 0 { finished.succeed(()) }
        for _ in 0..<workers { next() }
        return finished.futureResult
    }

    private func next() {
        guard NIODeadline.now() < end else {
            running -= 1
            if running == 0 { finished.succeed(()) }
            return
        }
        let endpoint = Endpoint.distributedRead.rawValue
        counters.endpoints[endpoint].sent += 1
        Exchange.start(request, target: target, on: loop, deadline: .now() + .fromSeconds(timeout)) { [self] outcome in
            switch outcome {
            case .response(let response):
                response.channel.closeWithoutTLSShutdown()
                if !(200..<300).contains(response.status) { counters.endpoints[endpoint].non2xx += 1 }
                counters.endpoints[endpoint].latency.record(micros: Int(response.latency.nanoseconds / 1000))
                switch Verdict.judge(response.body, endpoint: .distributedRead) {
                case .failed(let kind): counters.endpoints[endpoint].failures[kind.rawValue] += 1
                case .accepted, .enrolled: counters.endpoints[endpoint].ok += 1
                }
                next()
            case .failure(let kind):
                counters.endpoints[endpoint].failures[kind.rawValue] += 1
                // Not inline (a socket that cannot be created fails at once), and not in a busy loop.
                loop.scheduleTask(in: .milliseconds(10)) { [self] in self.next() }
            }
        }
    }
}

/// Enrolls once, for the node key the handshake loop sends (unless `--node-key` gave one).
enum OneEnrollment {
    static func run(target: ServerTarget, settings: FleetSettings, on loop: any EventLoop) -> EventLoopFuture<String> {
        let promise = loop.makePromise(of: String.self)
        loop.execute {
            let bodies = RequestBodies(secret: settings.secret, secretField: settings.secretField)
            let identity = HostIdentity(index: 0, prefix: settings.hostPrefix + "-handshakes")
            let request = target.request(path: settings.paths.enroll, body: bodies.enroll(identity), nodeKey: nil)
            Exchange.start(request, target: target, on: loop, deadline: .now() + .fromSeconds(settings.timeout)) { outcome in
                switch outcome {
                case .response(let response):
                    response.channel.closeWithoutTLSShutdown()
                    if case .enrolled(let key) = Verdict.judge(response.body, endpoint: .enroll) {
                        promise.succeed(key)
                    } else {
                        promise.fail(ServerTarget.Failure(description: "enroll refused: \(String(buffer: response.body))"))
                    }
                case .failure(let kind):
                    promise.fail(ServerTarget.Failure(description: "enroll failed: \(kind.name)"))
                }
            }
        }
        return promise.futureResult
    }
}
