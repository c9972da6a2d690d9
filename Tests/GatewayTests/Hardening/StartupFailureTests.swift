import Foundation
import Testing
@testable import Gateway

/// Start failures of the real binary: each exits within seconds, with its code and a sentence that
/// names the address or the file (the probe found a process that spun and ignored SIGTERM instead).
@Suite(.enabled(if: gatewayBinaryBuilt, "needs the built binary"))
struct StartupFailureTests {
    @Test func listenAddressInUseExitsOneNamingTheAddress() async throws {
        let held = try HeldPort()
        defer { held.close() }
        let fixture = try writeBinaryFixture(listen: "127.0.0.1:\(held.port)")
        let run = try await GatewayRun.run(["serve", "--config", fixture.config])
        #expect(!run.timedOut, "serve did not exit: \(run.errors)")
        #expect(run.status == 1)
        #expect(run.errors.contains("agent listener on 127.0.0.1:\(held.port) failed"), "\(run.errors)")
        #expect(run.errors.contains("Address already in use"))
    }

    @Test func adminAddressInUseExitsOneNamingTheAddress() async throws {
        let held = try HeldPort()
        defer { held.close() }
        let fixture = try writeBinaryFixture(listen: "127.0.0.1:0", extra: "admin: { listen: 127.0.0.1:\(held.port) }")
        let run = try await GatewayRun.run(["serve", "--config", fixture.config])
        #expect(!run.timedOut, "serve did not exit: \(run.errors)")
        #expect(run.status == 1)
        #expect(run.errors.contains("admin listener on 127.0.0.1:\(held.port) failed"), "\(run.errors)")
    }

    @Test func privateKeyOfAnotherCertificateExits78NamingTheFile() async throws {
        let fixture = try writeBinaryFixture(listen: "127.0.0.1:0")
        // tls/agent1.key is a valid key, but not the server certificate's.
        let other = try String(contentsOfFile: fixture.pki.client("agent1").key, encoding: .utf8)
        try Data(other.utf8).write(to: URL(fileURLWithPath: fixture.pki.serverKey))
        for command in ["serve", "check-config"] {
            let run = try await GatewayRun.run([command, "--config", fixture.config])
            #expect(!run.timedOut)
            #expect(run.status == 78, "\(command): \(run.errors)")
            #expect(run.errors.contains("line 4: tls.private_key: \(fixture.pki.serverKey) does not belong to the certificate in \(fixture.pki.serverCertificate)"),
                    "\(command): \(run.errors)")
        }
    }

    @Test func unreadableCertificateExits78NamingKeyLineAndFile() async throws {
        let fixture = try writeBinaryFixture(listen: "127.0.0.1:0")
        try FileManager.default.removeItem(atPath: fixture.pki.serverCertificate)
        for command in ["serve", "check-config"] {
            let run = try await GatewayRun.run([command, "--config", fixture.config])
            #expect(run.status == 78, "\(command): \(run.errors)")
            #expect(run.errors.contains("line 4: tls.certificate: no such file: \(fixture.pki.serverCertificate)"), "\(command): \(run.errors)")
        }
    }

    @Test func notACertificateExits78() async throws {
        let fixture = try writeBinaryFixture(listen: "127.0.0.1:0")
        try Data("not a certificate\n".utf8).write(to: URL(fileURLWithPath: fixture.pki.serverCertificate))
        let run = try await GatewayRun.run(["serve", "--config", fixture.config])
        #expect(run.status == 78, "\(run.errors)")
        #expect(run.errors.contains("tls.certificate: \(fixture.pki.serverCertificate) "), "\(run.errors)")
    }

    /// A running gateway stops on SIGTERM with 0, and says so in its log.
    @Test func sigtermStopsARunningGatewayWithZero() async throws {
        let fixture = try writeBinaryFixture(listen: "127.0.0.1:0")
        let child = try GatewayChild(["serve", "--config", fixture.config])
        for _ in 0..<200 where !child.output.contains("osquery-gateway listening on") { try await Task.sleep(for: .milliseconds(50)) }
        #expect(child.output.contains("osquery-gateway listening on 127.0.0.1:"))
        #expect(!child.output.contains("--tls_hostname=localhost:0 "), "the flags name the bound port, not 0")
        #expect(try await child.stop(SIGTERM))
        #expect(child.process.terminationStatus == 0)
        #expect(child.errors.contains("shutting down: draining in-flight requests"), "\(child.errors)")
        #expect(child.errors.contains("stopped"))
    }
}
