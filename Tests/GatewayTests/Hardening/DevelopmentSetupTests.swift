import Foundation
import Testing
@testable import Gateway

/// What a new operator meets first: `init`, the development setup, picking a port and a name.
@Suite(.enabled(if: gatewayBinaryBuilt, "needs the built binary"))
struct DevelopmentSetupTests {
    /// A typo in `tls.certificate` must not replace the key and CA every enrolled agent trusts.
    @Test func aTypoInTheCertificatePathNeverOverwritesTLSMaterial() async throws {
        let directory = makeTemporaryDirectory("dev")
        let initRun = try await GatewayRun.run(["init", "--dir", directory, "--listen", "127.0.0.1:0"])
        #expect(initRun.status == 0, "\(initRun.errors)")
        let key = try Data(contentsOf: URL(fileURLWithPath: directory + "/tls/server.key"))
        let ca = try Data(contentsOf: URL(fileURLWithPath: directory + "/tls/ca.pem"))
        let config = directory + "/gateway.yaml"
        let yaml = try String(contentsOfFile: config, encoding: .utf8)
        try Data(yaml.replacingOccurrences(of: "certificate: tls/server.pem", with: "certificate: tls/srever.pem").utf8)
            .write(to: URL(fileURLWithPath: config))
        let run = try await GatewayRun.run(["serve", "--config", config])
        #expect(run.status == 78, "\(run.errors)")
        #expect(run.errors.contains("tls.certificate: no such file: \(directory)/tls/srever.pem"), "\(run.errors)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: directory + "/tls/server.key")) == key)
        #expect(try Data(contentsOf: URL(fileURLWithPath: directory + "/tls/ca.pem")) == ca)
        #expect(!FileManager.default.fileExists(atPath: directory + "/tls/srever.pem"))
    }

    @Test func initHostnameGivesFlagsThatVerify() async throws {
        let directory = makeTemporaryDirectory("dev")
        let run = try await GatewayRun.run(["init", "--dir", directory, "--hostname", "gw.test", "--listen", "127.0.0.1:9443"])
        #expect(run.status == 0, "\(run.errors)")
        let flags = try String(contentsOfFile: directory + "/osquery.flags", encoding: .utf8)
        #expect(flags.contains("--tls_hostname=gw.test:9443\n"), "\(flags)")

        let warned = try await GatewayRun.run(["flags", "--config", directory + "/gateway.yaml", "--hostname", "other.test"])
        #expect(warned.status == 0)
        #expect(warned.output.contains("--tls_hostname=other.test:9443"))
        #expect(warned.errors.contains("warning: the server certificate \(directory)/tls/server.pem does not cover other.test (it names gw.test)"),
                "\(warned.errors)")
        let quiet = try await GatewayRun.run(["flags", "--config", directory + "/gateway.yaml", "--hostname", "gw.test"])
        #expect(quiet.errors.isEmpty, "\(quiet.errors)")
    }

    @Test func versionAndListenOption() async throws {
        let version = try await GatewayRun.run(["--version"])
        #expect(version.status == 0)
        #expect(version.output == GatewayVersion.current + "\n")

        let help = try await GatewayRun.run(["serve", "--help"])
        #expect(help.output.contains("--listen <listen>"))
        let bad = try await GatewayRun.run(["serve", "--config", try writeBinaryFixture(listen: "127.0.0.1:0").config, "--listen", "nowhere"])
        #expect(bad.status == 64)
        #expect(bad.errors.contains("--listen must look like host:port"))
    }

    /// The generated setup has an admin listener, so `/metrics` and `/health` work out of the box.
    @Test func developmentSetupServesHealth() async throws {
        let directory = makeTemporaryDirectory("dev")
        _ = try await GatewayRun.run(["init", "--dir", directory])
        let configuration = try GatewayConfiguration.load(file: directory + "/gateway.yaml")
        #expect(configuration.admin?.listen == .init(host: "127.0.0.1", port: 8444))
    }
}
