import ArgumentParser
import Foundation
import NIOSSL

/// `osquery-gateway init`: writes a development setup.
struct InitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Write a development PKI, enroll secret, osquery config and gateway.yaml.",
        discussion: """
            Writes into --dir (default ./data), never overwriting a file that exists:
              tls/ca.pem, tls/ca.key         development CA (ECDSA P-256)
              tls/server.pem, tls/server.key server certificate for every --hostname
              tls/client.pem, tls/client.key one client certificate for mutual TLS
              enroll_secret.txt              a random enroll secret
              osquery.conf                   a small base osquery config
              gateway.yaml                   a gateway configuration using all of the above
              osquery.flags                  the osqueryd flags for this gateway
            For development only: the CA key sits beside the certificates.
            """)

    @Option(help: "Folder to write into.") var dir = "data"
    @Option(name: .customLong("hostname"), help: "Host name or address for the server certificate (repeatable).")
    var hostnames: [String] = ["localhost", "127.0.0.1", "::1"]
    @Option(help: "Address the written gateway.yaml listens on.") var listen = "127.0.0.1:8443"

    func run() throws {
        guard GatewayConfiguration.Listen(parsing: listen) != nil else {
            throw ValidationError("--listen must look like host:port")
        }
        do {
            let written = try DevelopmentSetup.initialize(directory: dir, hostnames: hostnames, listen: listen)
            print(written.isEmpty ? "nothing to do: every file exists in \(dir)" : "wrote:\n" + written.map { "  " + $0 }.joined(separator: "\n"))
        } catch let error as ConfigurationError {
            CommandFailure.configuration(error.description).exit()
        }
    }
}

/// `osquery-gateway check-config`: validates a configuration and the files it names.
struct CheckConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-config",
        abstract: "Validate a configuration file and print every problem with its key.",
        discussion: "Exits 0 when the configuration can be served, 78 otherwise.")

    @OptionGroup var options: ConfigOption

    func run() throws {
        do {
            let configuration = try options.load()
            try configuration.checkFiles()
            _ = try EnrollSecretVerifier(configuration: configuration.enrollment.secrets)
            do {
                _ = try TLSConfiguration.gateway(configuration.tls)
            } catch {
                throw ConfigurationError(file: configuration.file, problems: [.init(key: "tls", line: nil, message: "cannot load certificate or key: \(error)")])
            }
            print("configuration ok: \(configuration.file ?? "")")
        } catch let failure as CommandFailure {
            failure.exit()
        } catch let error as ConfigurationError {
            CommandFailure.configuration(error.description).exit()
        }
    }
}

/// `osquery-gateway flags`: prints the osqueryd flags for this gateway.
struct FlagsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "flags",
        abstract: "Print the osqueryd flags that point an agent at this gateway.",
        discussion: "Save the output as a flagfile and start osqueryd with --flagfile=<file>.")

    @OptionGroup var options: ConfigOption
    @Option(help: "Host name agents use (must match the server certificate). Default: from listen.")
    var hostname: String?

    func run() throws {
        do {
            let configuration = try options.load()
            print(AgentFlags(configuration: configuration, hostname: hostname).lines.joined(separator: "\n"))
        } catch let failure as CommandFailure {
            failure.exit()
        }
    }
}
