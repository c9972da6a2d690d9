import Foundation
import Sinks
import Testing
@testable import Gateway

@Suite struct ConfigurationTests {
    let minimal = minimalConfigurationYAML

    @Test func defaultsAndPathResolution() throws {
        let configuration = try GatewayConfiguration.parse(yaml: minimal, baseDirectory: "/etc/gw", environment: [:])
        #expect(configuration.listen == .init(host: "127.0.0.1", port: 8443))
        #expect(configuration.tls.certificate == "/etc/gw/tls/server.pem")
        #expect(configuration.tls.clientCertificates == .none)
        #expect(configuration.dataDir == "/etc/gw/data")
        #expect(configuration.nodeStore == .sqlite(.init(path: "/etc/gw/data/nodes.sqlite")))
        #expect(configuration.sinks.map(\.directory) == ["/etc/gw/data/logs"])
        #expect(configuration.endpoints.logger == "/logger")
        #expect(configuration.limits.idleTimeout == .seconds(75))
    }

    @Test func everyProblemIsReportedWithItsKeyAndLine() throws {
        let yaml = """
            listen: nowhere
            tls:
              certificate: a.pem
              privat_key: a.key
              client_certificates: sometimes
            endpoints:
              logger: log
            limits:
              max_body: lots
            sinks:
              - { name: files, type: kafka, directory: logs }
            """
        let text = try configurationProblems(yaml)
        #expect(text.contains("line 1: listen: expected host:port such as 0.0.0.0:8443, found \"nowhere\""))
        #expect(text.contains("line 4: tls.privat_key: unknown key"))
        #expect(text.contains { $0.hasPrefix("line 3: tls.private_key: is required") })
        #expect(text.contains("line 5: tls.client_certificates: expected one of none, optional, required, found \"sometimes\""))
        #expect(text.contains("line 7: endpoints.logger: must be a path starting with / and without ?"))
        #expect(text.contains("line 9: limits.max_body: expected a size such as 64MiB or 1GiB, found \"lots\""))
        #expect(text.contains("line 11: sinks[0].type: expected one of file, zstd, http, s3, kinesis, firehose, syslog, nats, upstream, postgres, found \"kafka\""))
        #expect(text.contains { $0.contains("enrollment: no way to enroll") })
    }

    @Test func environmentReferencesExpand() throws {
        let yaml = minimal + "listen: ${GW_HOST}:9443\n"
        let configuration = try GatewayConfiguration.parse(yaml: yaml, baseDirectory: "/tmp", environment: ["GW_HOST": "0.0.0.0"])
        #expect(configuration.listen == .init(host: "0.0.0.0", port: 9443))
        #expect(throws: ConfigurationError.self) {
            try GatewayConfiguration.parse(yaml: yaml, baseDirectory: "/tmp", environment: [:])
        }
    }

    @Test func sizesAndDurations() {
        #expect(ByteSize.parse("64MiB") == 64 << 20)
        #expect(ByteSize.parse("10MB") == 10_000_000)
        #expect(ByteSize.parse("512") == 512)
        #expect(ByteSize.parse("-1KiB") == nil)
        #expect(DurationText.parse("250ms") == .milliseconds(250))
        #expect(DurationText.parse("5m") == .seconds(300))
        #expect(DurationText.parse("1h") == .seconds(3600))
        #expect(DurationText.parse("soon") == nil)
    }

    @Test func initWritesAWorkingDevelopmentSetup() async throws {
        let directory = makeTemporaryDirectory("init")
        let written = try DevelopmentSetup.initialize(directory: directory, hostnames: ["localhost", "127.0.0.1"], listen: "127.0.0.1:8443")
        #expect(written.count == 11)
        let configuration = try GatewayConfiguration.load(file: directory + "/gateway.yaml")
        try await configuration.checkServable()
        #expect(configuration.development)
        let flags = try String(contentsOfFile: directory + "/osquery.flags", encoding: .utf8)
        #expect(flags.contains("--tls_hostname=localhost:8443"))
        #expect(flags.contains("--enroll_secret_path=\(directory)/enroll_secret.txt"))
        #expect(flags.contains("--logger_tls_endpoint=/logger"))
        // Nothing is overwritten on a second run.
        #expect(try DevelopmentSetup.initialize(directory: directory, hostnames: ["localhost"], listen: "127.0.0.1:8443").isEmpty)
        let key = try FileManager.default.attributesOfItem(atPath: directory + "/tls/server.key")
        #expect((key[.posixPermissions] as? Int) == 0o600)
    }
}

extension ConfigurationTests {
    @Test func theDocumentedExampleIsValid() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let text = try String(contentsOf: root.appendingPathComponent("Config/gateway.example.yaml"), encoding: .utf8)
        let configuration = try GatewayConfiguration.parse(yaml: text, baseDirectory: "/etc/osquery-gateway", environment: ["VENDOR_TOKEN": "t", "SIEM_TOKEN": "s"])
        #expect(configuration.listen == .init(host: "0.0.0.0", port: 8443))
        #expect(configuration.enrollment.secrets.map(\.name) == ["default", "staging"])
        #expect(configuration.limits.maxBody == 64 << 20)
        #expect(configuration.agentConfig.sources.map(\.name) == ["base", "packs", "fleet-options", "backend", "vendor"])
        #expect(configuration.agentConfig.targets.map(\.name) == ["macs", "staging"])
        #expect(configuration.agentConfig.defaultSources?.count == 5)
        #expect(configuration.sinks.map(\.name) == ["files", "archive", "siem", "backend", "db"])
        #expect(configuration.sinks[2].match.queries == ["pack_detections_*"])
        #expect(configuration.spool.maxSize == 1 << 30)
        #expect(configuration.admin?.listen == .init(host: "127.0.0.1", port: 9443))
        #expect(configuration.upstream?.endpoints.logger == "/api/osquery/log")
        #expect(configuration.upstream?.identityHeaders.serial == "X-Client-Cert-Serial")
        #expect(configuration.carves == CarveService.Configuration(
            path: "/etc/osquery-gateway/data/carves.sqlite", directory: "/etc/osquery-gateway/data/carves", maxSize: 2 << 30,
            maxBlockSize: 8 << 20, maxOpenSessions: 64, maxSessionAge: .seconds(86_400)))
    }
}
