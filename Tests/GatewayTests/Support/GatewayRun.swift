import Foundation
@testable import Gateway

/// One run of the real `osquery-gateway` binary that is expected to end by itself: its exit code and
/// what it printed. A run still alive after `timeout` is killed and reported as such.
struct GatewayRun {
    var status: Int32
    var output: String
    var errors: String
    var timedOut: Bool

    /// Runs the binary with `arguments` in `directory`.
    static func run(_ arguments: [String], in directory: String? = nil, timeout: Duration = .seconds(20)) async throws -> GatewayRun {
        let child = try GatewayChild(arguments, in: directory)
        let deadline = ContinuousClock.now + timeout
        var timedOut = false
        while child.process.isRunning {
            if ContinuousClock.now > deadline {
                timedOut = true
                kill(child.process.processIdentifier, SIGKILL)
                break
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        child.process.waitUntilExit()
        return GatewayRun(status: child.process.terminationStatus, output: child.output, errors: child.errors, timedOut: timedOut)
    }
}

/// The real binary as a child process whose standard output and error go to files.
///
/// Files, not pipes: reading a pipe blocks, and a blocking read inside a Swift task would hold one
/// of the cooperative pool's two threads here, which can stall every other test of the process.
final class GatewayChild: @unchecked Sendable {
    let process = Process()
    private let outputPath: String
    private let errorsPath: String

    init(_ arguments: [String], in directory: String? = nil) throws {
        let folder = makeTemporaryDirectory("child")
        outputPath = folder + "/stdout"
        errorsPath = folder + "/stderr"
        _ = FileManager.default.createFile(atPath: outputPath, contents: nil)
        _ = FileManager.default.createFile(atPath: errorsPath, contents: nil)
        process.executableURL = URL(fileURLWithPath: gatewayBinary)
        process.arguments = arguments
        if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
        process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: outputPath))
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: errorsPath))
        process.standardInput = FileHandle.nullDevice
        try process.run()
    }

    var output: String { (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? "" }
    var errors: String { (try? String(contentsOfFile: errorsPath, encoding: .utf8)) ?? "" }

    /// Sends `signal` and waits up to `timeout` for the process to end; true if it did.
    func stop(_ signal: Int32 = SIGTERM, timeout: Duration = .seconds(10)) async throws -> Bool {
        kill(process.processIdentifier, signal)
        let deadline = ContinuousClock.now + timeout
        while process.isRunning && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            return false
        }
        process.waitUntilExit()
        return true
    }
}

/// Whether the test binary's sibling `osquery-gateway` was built (it is, by `make test`).
let gatewayBinaryBuilt = FileManager.default.isExecutableFile(atPath: gatewayBinary)

/// A folder with a working configuration for the real binary: test PKI, secret, osquery config and
/// `gateway.yaml` with `extra` appended (`listen` is given separately so tests can pick the port).
func writeBinaryFixture(listen: String, extra: String = "", label: String = "binary") throws -> (directory: String, config: String, pki: TestPKI) {
    let directory = makeTemporaryDirectory(label)
    let pki = try TestPKI(directory: directory + "/tls")
    try Data("binary-secret\n".utf8).write(to: URL(fileURLWithPath: directory + "/secret.txt"))
    try Data(#"{"options":{}}"#.utf8).write(to: URL(fileURLWithPath: directory + "/osquery.conf"))
    let config = directory + "/gateway.yaml"
    try Data("""
        listen: \(listen)
        data_dir: data
        log_level: notice
        tls: { certificate: tls/server.pem, private_key: tls/server.key }
        enrollment: { secrets: [{ name: default, file: secret.txt }] }
        agent_config: { sources: [{ name: base, file: osquery.conf }] }
        \(extra)
        """.utf8).write(to: URL(fileURLWithPath: config))
    return (directory, config, pki)
}

/// A TCP socket listening on 127.0.0.1 at a free port, held until `close`: "address in use".
final class HeldPort {
    let port: Int
    private let fd: Int32

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
        guard bound == 0, listen(fd, 1) == 0 else { throw CocoaError(.fileWriteUnknown) }
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        self.fd = fd
        port = Int(UInt16(bigEndian: address.sin_port))
    }

    func close() { _ = Glibc.close(fd) }
}
