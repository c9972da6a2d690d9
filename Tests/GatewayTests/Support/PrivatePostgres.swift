import Foundation
import Support

/// A PostgreSQL server of one test's own, which the test may stop and start again: `initdb` into a
/// temporary folder, a free loopback port, stopped by its data folder (its PID as a last resort).
/// The server `scripts/with-postgres.sh` starts is shared by every test, so outages are played here.
///
/// As in that script, the binaries are Debian's (`/usr/lib/postgresql/N/bin`), and as root the
/// cluster belongs to the `postgres` user (initdb refuses root).
final class PrivatePostgres: @unchecked Sendable {
    /// The newest installed server's binaries, if any.
    static let binDirectory: String? = {
        let root = "/usr/lib/postgresql"
        let versions = ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? [])
            .compactMap { Int($0) }.sorted()
        for version in versions.reversed() {
            let bin = "\(root)/\(version)/bin"
            if FileManager.default.isExecutableFile(atPath: bin + "/initdb"), FileManager.default.isExecutableFile(atPath: bin + "/pg_ctl") {
                return bin
            }
        }
        return nil
    }()

    /// `runuser`, needed as root.
    static let runuser: String? = ["/usr/sbin/runuser", "/sbin/runuser", "/usr/bin/runuser"]
        .first { FileManager.default.isExecutableFile(atPath: $0) }

    /// Whether this machine can run one: the binaries, and as root the `postgres` user and `runuser`.
    static var available: Bool {
        guard binDirectory != nil else { return false }
        if getuid() != 0 { return true }
        return runuser != nil && getpwnam("postgres") != nil
    }

    let directory: String
    let port: Int
    private let bin: String
    private var data: String { directory + "/data" }

    /// The superuser's database on this server.
    var endpoint: PostgresEndpoint {
        var endpoint = PostgresEndpoint(host: "127.0.0.1", port: port, username: "postgres", database: "postgres")
        endpoint.tls = .disable
        return endpoint
    }

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    private init(bin: String) throws {
        self.bin = bin
        port = freeLoopbackPort()
        // Not under NSTemporaryDirectory(): its parent folders may be private to root, and the
        // server runs as postgres.
        directory = "/tmp/gw-private-pg-\(UUID().uuidString.prefix(8).lowercased())"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o755])
    }

    /// Creates the cluster and starts the server.
    static func make() async throws -> PrivatePostgres {
        guard let bin = binDirectory else { throw Failure(description: "PostgreSQL is not installed") }
        let server = try PrivatePostgres(bin: bin)
        do {
            if getuid() == 0 { try await server.run("/usr/bin/env", ["chown", "postgres", server.directory], asOwner: false) }
            try await server.run(bin + "/initdb", ["-D", server.data, "--auth=trust", "-U", "postgres", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"])
            try await server.start()
        } catch {
            await server.destroy()
            throw error
        }
        return server
    }

    /// Starts the server (again), waiting until it takes connections.
    func start() async throws {
        try await run(bin + "/pg_ctl", [
            "-D", data, "-l", directory + "/server.log", "-w", "-t", "30", "start",
            "-o", "-p \(port) -k \(directory) -c listen_addresses=127.0.0.1 -c fsync=off",
        ])
    }

    /// Stops the server: open connections are closed at once (`-m fast`), new ones refused.
    func stop() async throws {
        try await run(bin + "/pg_ctl", ["-D", data, "-m", "fast", "-w", "-t", "30", "stop"])
    }

    /// Stops the server if it runs (by its PID when pg_ctl cannot) and removes its folder.
    func destroy() async {
        if FileManager.default.fileExists(atPath: data + "/postmaster.pid") {
            do {
                try await stop()
            } catch {
                if let text = try? String(contentsOfFile: data + "/postmaster.pid", encoding: .utf8),
                   let line = text.split(separator: "\n").first, let pid = Int32(line) {
                    kill(pid, SIGKILL)
                }
            }
        }
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// Runs a command to its end (as the cluster's owner when root), its output in a file.
    ///
    /// Spawned here rather than with Foundation's `Process`, which learns that a child ended when a
    /// descriptor the child inherited closes: `pg_ctl start` leaves the server running in the
    /// background holding that descriptor, so `Process` would wait for the server's end. Every
    /// descriptor past standard error is closed in the child, and the child is reaped by its PID.
    private func run(_ executable: String, _ arguments: [String], asOwner: Bool = true) async throws {
        var argv = [executable] + arguments
        if asOwner && getuid() == 0, let runuser = Self.runuser {
            argv = [runuser, "-u", "postgres", "--"] + argv
        }
        let output = makeTemporaryDirectory("pg-command") + "/output"
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        // glibc's closefrom and chdir file actions, which Swift's Glibc module does not export.
        typealias ClosefromAction = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
        typealias ChdirAction = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, UnsafePointer<CChar>) -> Int32
        if let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addclosefrom_np") {
            _ = unsafeBitCast(symbol, to: ClosefromAction.self)(&actions, 3)
        }
        // A folder the postgres user may enter (the test's own may be private to root).
        if let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addchdir_np") {
            _ = unsafeBitCast(symbol, to: ChdirAction.self)(&actions, directory)
        }
        let cArguments = argv.map { strdup($0) } + [nil]
        defer { cArguments.forEach { free($0) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, argv[0], &actions, nil, cArguments, environ)
        guard spawned == 0 else { throw Failure(description: "\(argv[0]) could not start: errno \(spawned)") }
        var status: Int32 = 0
        let deadline = ContinuousClock.now + .seconds(60)
        while waitpid(pid, &status, WNOHANG) == 0 {
            guard ContinuousClock.now < deadline else {
                kill(pid, SIGKILL)
                _ = waitpid(pid, &status, 0)
                throw Failure(description: "\(executable) did not finish within 60 s")
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        // Exited normally with status 0: WIFEXITED and WEXITSTATUS, which Swift does not import.
        guard status & 0x7f == 0, (status >> 8) & 0xff == 0 else {
            let text = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
            throw Failure(description: "\(executable) \(arguments.joined(separator: " ")) ended with status \(status): \(text.suffix(2_000))")
        }
    }
}

/// Runs `body` with a private PostgreSQL server, and always removes it afterwards.
func withPrivatePostgres(_ body: (PrivatePostgres) async throws -> Void) async throws {
    let server = try await PrivatePostgres.make()
    do {
        try await body(server)
    } catch {
        await server.destroy()
        throw error
    }
    await server.destroy()
}
