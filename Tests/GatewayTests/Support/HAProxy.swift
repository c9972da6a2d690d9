import Foundation

/// A real HAProxy in TCP mode in front of gateways (issue 12 item 7), on a free loopback port,
/// started and stopped by PID. TLS passes through it untouched, as in production
/// (docs/scale-out.md).
///
/// The test writes the configuration itself, because only the test knows the gateways' ports; so
/// there is no `scripts/with-haproxy.sh`. Tests that need it skip themselves when `installed` is
/// false (`make test-deps` installs the `haproxy` package).
final class HAProxy: @unchecked Sendable {
    /// One gateway behind the balancer.
    struct Backend {
        /// The agent listener.
        var port: Int
        /// The admin listener, whose `GET /health` is the health check (HTTP 503 takes it out).
        var healthPort: Int
    }

    /// The PROXY protocol header HAProxy puts before the agent's bytes, if any.
    enum SendProxy: String {
        case none = ""
        case v1 = " send-proxy"
        case v2 = " send-proxy-v2"
    }

    static let binary: String? = ["/usr/sbin/haproxy", "/usr/local/sbin/haproxy", "/usr/bin/haproxy"]
        .first { FileManager.default.isExecutableFile(atPath: $0) }
    static var installed: Bool { binary != nil }

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    /// The frontend agents connect to.
    let port: Int
    let directory: String
    private let process = Process()
    private var stopped = false

    var baseURL: String { "https://127.0.0.1:\(port)" }
    /// What HAProxy printed (server state changes, alerts), for failure messages.
    var output: String { (try? String(contentsOfFile: directory + "/haproxy.log", encoding: .utf8)) ?? "" }

    /// Starts HAProxy and returns once its frontend accepts connections.
    ///
    /// Round robin per connection; a refused connection is retried on the next server at once
    /// (`retries`, `option redispatch 1`), and health checks every 300 ms take a dead gateway out
    /// after one failure and bring it back after one success, so tests stay fast.
    init(backends: [Backend], sendProxy: SendProxy = .none) async throws {
        guard let binary = Self.binary else { throw Failure(description: "haproxy is not installed") }
        directory = makeTemporaryDirectory("haproxy")
        port = freeLoopbackPort()
        let servers = backends.enumerated().map { index, backend in
            "    server g\(index) 127.0.0.1:\(backend.port) check port \(backend.healthPort)\(sendProxy.rawValue)"
        }
        let configuration = """
            global
                maxconn 4096
            defaults
                mode tcp
                timeout connect 1s
                timeout client 30s
                timeout server 30s
                # A check answered late on a loaded machine is no failure; a dead gateway's check
                # is refused at once, which still takes it out after one.
                timeout check 3s
                retries 3
                option redispatch 1
            frontend agents
                bind 127.0.0.1:\(port)
                default_backend gateways
            backend gateways
                balance roundrobin
                option httpchk
                http-check send meth GET uri /health ver HTTP/1.1 hdr Host localhost
                http-check expect status 200
                default-server inter 300ms fall 1 rise 1
            \(servers.joined(separator: "\n"))

            """
        let file = directory + "/haproxy.cfg"
        try Data(configuration.utf8).write(to: URL(fileURLWithPath: file))
        let log = directory + "/haproxy.log"
        FileManager.default.createFile(atPath: log, contents: nil)
        process.executableURL = URL(fileURLWithPath: binary)
        // -db: stay in the foreground, so the PID is HAProxy's own.
        process.arguments = ["-db", "-f", file]
        process.standardInput = FileHandle.nullDevice
        let logHandle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        process.standardOutput = logHandle
        process.standardError = logHandle
        try process.run()
        for _ in 0..<100 where !acceptsConnections(port) {
            guard process.isRunning else { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        guard acceptsConnections(port) else {
            stop()
            throw Failure(description: "haproxy did not start: \(output)")
        }
    }

    /// Kills HAProxy (it keeps nothing worth a graceful stop) and reaps it.
    ///
    /// SIGKILL, not SIGTERM: a child inherits the test process's signal mask, which blocks SIGTERM
    /// in some threads (see `ServerProcess` in SinksTests).
    func stop() {
        guard !stopped else { return }
        stopped = true
        let pid = process.processIdentifier
        guard pid > 0 else { return }
        kill(pid, SIGKILL)
        var status: Int32 = 0
        _ = waitpid(pid, &status, 0)
    }

    deinit { stop() }
}

/// Whether something accepts TCP connections on 127.0.0.1:`port`.
func acceptsConnections(_ port: Int) -> Bool {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = UInt16(port).bigEndian
    let length = socklen_t(MemoryLayout<sockaddr_in>.size)
    return withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, length) } } == 0
}
