import Foundation
import Testing
@testable import Gateway

/// SIGHUP re-reads the configuration file of the real binary: secrets, config sources, sinks and
/// the TLS certificate change live; restart-only keys are reported; a broken file changes nothing.
@Suite(.enabled(if: gatewayBinaryBuilt, "needs the built binary"))
struct ReloadTests {
    func waitFor(_ text: String, in child: GatewayChild, count: Int = 1) async throws -> Bool {
        for _ in 0..<300 {
            if child.errors.components(separatedBy: text).count - 1 >= count { return true }
            try await Task.sleep(for: .milliseconds(50))
        }
        return false
    }

    @Test func sighupAppliesTheFileAndRefusesABrokenOne() async throws {
        let fixture = try writeBinaryFixture(listen: "127.0.0.1:0", extra: "sinks: [{ name: files, type: file, directory: logs }]")
        let directory = fixture.directory
        let child = try GatewayChild(["serve", "--config", fixture.config])
        var port = 0
        for _ in 0..<200 where port == 0 {
            if let range = child.output.range(of: #"listening on 127\.0\.0\.1:\d+"#, options: .regularExpression) {
                port = Int(child.output[range].split(separator: ":").last!)!
            } else {
                try await Task.sleep(for: .milliseconds(50))
            }
        }
        #expect(port > 0, "\(child.errors)")
        let base = "https://127.0.0.1:\(port)"
        let before = try AgentEmulator(baseURL: base, caCertificate: fixture.pki.caCertificate, secret: "binary-secret")
        #expect(try await before.enroll().status == 200)
        #expect(try await before.log("result", [resultItem("first", host: before.hostIdentifier, columns: ["n": "1"])]).body == "{}")
        let enrolledKey = before.nodeKey

        // The new file: another secret, a new server certificate from another CA, one more config
        // source and sink, and a restart-only key changed.
        let pki = try DevelopmentPKI(name: "reload CA")
        let server = try pki.issueServer(hostnames: ["localhost", "127.0.0.1"])
        try Data(server.certificatePEM.utf8).write(to: URL(fileURLWithPath: directory + "/tls/server2.pem"))
        try Data(server.privateKeyPEM.utf8).write(to: URL(fileURLWithPath: directory + "/tls/server2.key"))
        try Data(pki.ca.certificatePEM.utf8).write(to: URL(fileURLWithPath: directory + "/tls/ca2.pem"))
        try Data("second-secret\n".utf8).write(to: URL(fileURLWithPath: directory + "/secret2.txt"))
        let reloaded = """
            listen: 127.0.0.1:0
            data_dir: data
            log_level: notice
            tls: { certificate: tls/server2.pem, private_key: tls/server2.key }
            enrollment: { secrets: [{ name: second, file: secret2.txt }] }
            agent_config:
              sources:
                - { name: base, file: osquery.conf }
                - name: extra
                  inline: { schedule: { reloaded_q: { query: "SELECT 1;", interval: 60 } } }
            sinks:
              - { name: files, type: file, directory: logs }
              - { name: more, type: file, directory: logs2 }
            limits: { idle_timeout: 30s }
            """
        try Data(reloaded.utf8).write(to: URL(fileURLWithPath: fixture.config))
        kill(child.process.processIdentifier, SIGHUP)
        #expect(try await waitFor("configuration reloaded", in: child), "\(child.errors)")
        #expect(child.errors.contains("changed but needs a restart"))
        #expect(child.errors.contains("gw.keys=limits"), "\(child.errors)")

        // On a new connection the old CA no longer verifies the server (the open one keeps its
        // session); the new CA does, with the new secret only.
        let oldTrust = try AgentEmulator(baseURL: base, caCertificate: fixture.pki.caCertificate, secret: "second-secret")
        await #expect(throws: (any Error).self) { try await oldTrust.enroll() }
        try await oldTrust.shutdown()
        let after = try AgentEmulator(baseURL: base, caCertificate: directory + "/tls/ca2.pem", secret: "binary-secret")
        #expect(try await after.enroll().outcome == .nodeInvalid)
        after.secret = "second-secret"
        #expect(try await after.enroll().status == 200)
        // A node enrolled before the reload keeps its key, and gets the merged config with the new source.
        after.nodeKey = enrolledKey
        let config = try await after.config()
        #expect(config.body.contains("reloaded_q"), "\(config.body)")
        #expect(try await after.log("result", [resultItem("second", host: after.hostIdentifier, columns: ["n": "2"])]).body == "{}")
        // The new sink starts at the oldest data in the spool, so it gets both lines.
        var more = ""
        for _ in 0..<200 where !(more.contains("\"first\"") && more.contains("\"second\"")) {
            try await Task.sleep(for: .milliseconds(50))
            more = (try? String(contentsOfFile: directory + "/data/logs2/osqueryd.results.log", encoding: .utf8)) ?? ""
        }
        #expect(more.contains("\"second\""), "\(more)")

        // A broken file is refused with its problems, and the running configuration stays.
        try Data("tls: [not, a, mapping\n".utf8).write(to: URL(fileURLWithPath: fixture.config))
        kill(child.process.processIdentifier, SIGHUP)
        #expect(try await waitFor("configuration not reloaded; the running one stays", in: child), "\(child.errors)")
        let third = try AgentEmulator(baseURL: base, caCertificate: directory + "/tls/ca2.pem", secret: "second-secret")
        #expect(try await third.enroll().status == 200)

        for agent in [before, after, third] { try await agent.shutdown() }
        #expect(try await child.stop())
        #expect(child.process.terminationStatus == 0)
    }
}
