import Foundation

/// A server the test starts and stops itself (nats-server, rsyslogd, openssl s_server), by PID.
///
/// Its standard input is a pipe kept open (openssl s_server ends at end of input), its output goes
/// to `output` (a file) or nowhere.
final class ServerProcess: @unchecked Sendable {
    private let process = Process()
    private let input = Pipe()

    init(_ executable: String, _ arguments: [String], output: String? = nil) throws {
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardInput = input
        if let output {
            FileManager.default.createFile(atPath: output, contents: nil)
            process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: output))
        } else {
            process.standardOutput = FileHandle.nullDevice
        }
        process.standardError = FileHandle.nullDevice
        try process.run()
    }

    var pid: Int32 { process.processIdentifier }

    private var stopped = false

    /// SIGTERM, then SIGKILL if it is still there after 5 s; returns once it is gone.
    ///
    /// A child inherits the test process's signal mask, and the test process blocks SIGTERM in some
    /// threads (signal handling through Dispatch), so SIGTERM alone may never arrive; and
    /// Foundation's `waitUntilExit` then waits forever. Hence plain `kill` and `waitpid`.
    func stop() {
        guard !stopped else { return }
        stopped = true
        let pid = process.processIdentifier
        guard pid > 0 else { return }
        kill(pid, SIGTERM)
        for _ in 0..<100 {
            var status: Int32 = 0
            if waitpid(pid, &status, WNOHANG) == pid || kill(pid, 0) != 0 { return }
            usleep(50_000)
        }
        kill(pid, SIGKILL)
        var status: Int32 = 0
        _ = waitpid(pid, &status, 0)
    }

    deinit { stop() }
}

/// Whether something accepts TCP connections on 127.0.0.1:`port`.
func isListening(_ port: Int) -> Bool {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = UInt16(port).bigEndian
    let length = socklen_t(MemoryLayout<sockaddr_in>.size)
    return withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, length) } } == 0
}
