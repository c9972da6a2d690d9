import ArgumentParser
import Foundation
import Logging

/// `osquery-gateway`: the command line.
///
/// Exit codes: 0 ok, 64 usage, 78 configuration error, 1 anything else.
struct GatewayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "osquery-gateway",
        abstract: "A TLS gateway between osquery agents and everything behind them.",
        discussion: """
            Agents enroll, fetch config, send logs and poll for distributed queries over the osquery TLS \
            remote API. The gateway authenticates them by node key and client certificate, serves one \
            merged config per node, and acknowledges logs only once they are durable in its spool, then \
            delivers them to every configured sink.

            First run: `osquery-gateway serve` with no configuration writes a development PKI, an enroll \
            secret and a config under ./data, listens on 127.0.0.1:8443 and prints the osqueryd flags.
            """,
        version: GatewayVersion.current,
        subcommands: [
            ServeCommand.self, InitCommand.self, CheckConfigCommand.self, FlagsCommand.self, ConfigCommand.self,
            QueryCommand.self, QueriesCommand.self, NodesCommand.self, CarveCommand.self, CarvesCommand.self, StoreCommand.self,
        ],
        defaultSubcommand: ServeCommand.self
    )
}

/// Shared `--config` option and the rule for finding the configuration file.
struct ConfigOption: ParsableArguments {
    @Option(name: .shortAndLong, help: ArgumentHelp(
        "Configuration file (YAML).",
        discussion: "Default: Config/gateway.yaml if present, else data/gateway.yaml (written on first start)."),
        completion: .file(extensions: ["yaml", "yml"]))
    var config: String?

    /// The file to read, or nil when none exists yet (first start).
    func resolvedPath() -> String? {
        if let config { return config }
        for candidate in ["Config/gateway.yaml", "data/gateway.yaml"] where FileManager.default.fileExists(atPath: candidate) {
            return candidate
        }
        return nil
    }

    /// Loads the configuration, turning problems into exit code 78 with every problem printed.
    func load() throws -> GatewayConfiguration {
        guard let path = resolvedPath() else {
            throw CommandFailure.configuration("no configuration file: pass --config, or run `osquery-gateway init`")
        }
        do {
            return try GatewayConfiguration.load(file: path)
        } catch let error as ConfigurationError {
            throw CommandFailure.configuration(error.description)
        }
    }
}

/// Failures that map to an exit code.
enum CommandFailure: Error, CustomStringConvertible {
    /// A problem with the configuration or the files it names: exit 78 (EX_CONFIG).
    case configuration(String)
    /// Wrong arguments: exit 64 (EX_USAGE).
    case usage(String)
    /// Anything else (an address in use, a failing disk): exit 1.
    case failed(String)

    /// Classifies any error a command meets.
    init(_ error: any Error) {
        switch error {
        case let failure as CommandFailure: self = failure
        case let error as ConfigurationError: self = .configuration(error.description)
        default: self = .failed("osquery-gateway: \(error)")
        }
    }

    var description: String {
        switch self {
        case .configuration(let text), .usage(let text), .failed(let text): return text
        }
    }

    var exitCode: Int32 {
        switch self {
        case .configuration: return 78
        case .usage: return 64
        case .failed: return 1
        }
    }
}

extension CommandFailure {
    /// Prints the failure and exits with its code.
    func exit() -> Never {
        FileHandle.standardError.write(Data((description + "\n").utf8))
        Foundation.exit(exitCode)
    }

    /// Runs a command's work; an error it throws is printed and ends the process with its exit
    /// code (78 configuration, 64 usage, 1 anything else), the one way every command fails.
    static func exitOnFailure<T>(_ work: () throws -> T) -> T {
        do { return try work() } catch { CommandFailure(error).exit() }
    }

    /// `exitOnFailure` for asynchronous work.
    static func exitOnFailure<T>(_ work: () async throws -> T) async -> T {
        do { return try await work() } catch { CommandFailure(error).exit() }
    }
}

/// The gateway's version, printed by `--version`.
enum GatewayVersion {
    static let current = "0.5.0"
}

/// The process entry point (`Sources/GatewayMain`). The gateway itself is a library, so the fuzz
/// targets and the tests link the same code the binary runs.
public enum GatewayEntryPoint {
    public static func main() async {
        await GatewayCommand.main()
    }

    /// Whether `main` should make NIO's event loops Swift's global executor (the default); set
    /// `OSQUERY_GATEWAY_SWIFT_EXECUTOR=1` to keep Swift's own pool.
    public static var usesNIOExecutor: Bool {
        ProcessInfo.processInfo.environment["OSQUERY_GATEWAY_SWIFT_EXECUTOR"] != "1"
    }
}
