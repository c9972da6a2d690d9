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
              admin_token.txt                the admin API's bearer token (0600)
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
        guard ListenAddress(parsing: listen) != nil else {
            throw ValidationError("--listen must look like host:port")
        }
        let written = CommandFailure.exitOnFailure { try DevelopmentSetup.initialize(directory: dir, hostnames: hostnames, listen: listen) }
        print(written.isEmpty ? "nothing to do: every file exists in \(dir)" : "wrote:\n" + written.map { "  " + $0 }.joined(separator: "\n"))
    }
}

/// `osquery-gateway check-config`: validates a configuration and everything it names.
struct CheckConfigCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-config",
        abstract: "Validate a configuration file and everything it names, printing every problem with its key.",
        discussion: """
            Loads what `serve` would load without binding a port: the TLS certificate and key (and that \
            they belong together), the client CA, enroll secrets, local config sources and the sinks' \
            certificates. Exits 0 when the configuration can be served, 78 otherwise.
            """)

    @OptionGroup var options: ConfigOption

    func run() async throws {
        let configuration = await CommandFailure.exitOnFailure {
            let configuration = try options.load()
            try await configuration.checkServable()
            return configuration
        }
        print("configuration ok: \(configuration.file ?? "")")
        if let warning = AgentFlags(configuration: configuration).hostnameWarning { print(warning) }
    }
}

/// `osquery-gateway flags`: prints the osqueryd flags for this gateway.
struct FlagsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "flags",
        abstract: "Print the osqueryd flags that point an agent at this gateway.",
        discussion: """
            Save the output as a flagfile and start osqueryd with --flagfile=<file>. A warning goes to \
            standard error when the server certificate does not cover the host name.
            """)

    @OptionGroup var options: ConfigOption
    @Option(help: "Host name agents use (must match the server certificate). Default: from listen and the certificate.")
    var hostname: String?

    func run() throws {
        let flags = AgentFlags(configuration: CommandFailure.exitOnFailure { try options.load() }, hostname: hostname)
        print(flags.lines.joined(separator: "\n"))
        if let warning = flags.hostnameWarning { FileHandle.standardError.write(Data((warning + "\n").utf8)) }
    }
}
