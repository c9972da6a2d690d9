import Foundation
import Testing
@testable import Gateway

/// `check-config` refuses what cannot serve, loading everything `serve` would, and every problem is
/// a sentence naming the key, the line and the file.
@Suite struct ConfigCheckTests {
    func parse(_ extra: String) throws -> GatewayConfiguration {
        try GatewayConfiguration.parse(yaml: """
            tls: { certificate: a.pem, private_key: a.key }
            enrollment: { secrets: [{ name: default, file: secret.txt }] }
            \(extra)
            """, baseDirectory: "/tmp", environment: [:])
    }

    func problems(_ extra: String) -> [String] {
        do {
            _ = try parse(extra)
            return []
        } catch let error as ConfigurationError {
            return error.problems.map(\.description)
        } catch {
            return ["\(error)"]
        }
    }

    @Test func valuesThatMakeTheGatewayUnusableAreRefused() {
        #expect(problems("limits: { idle_timeout: 0s }") == ["line 3: limits.idle_timeout: must be at least 1.0 seconds, found \"0s\""])
        #expect(problems("limits: { max_body: 0 }") == ["line 3: limits.max_body: must be at least 16384 bytes, found \"0\""])
        #expect(problems("limits: { body_timeout: 0s }").count == 1)
        #expect(problems("spool: { max_size: 2MiB }").contains { $0.contains("spool.max_size: must be at least limits.max_inflated_body") })
        #expect(problems("spool: { max_size: 64MiB, segment_size: 64MiB }\nlimits: { max_inflated_body: 64MiB }").isEmpty)
        #expect(problems("limits: { backlog: 0 }").count == 1)
        #expect(problems("limits: { backlog: 8192, body_timeout: 30s, in_flight_bytes: 2GiB }").isEmpty)
        #expect(problems("limits: { spool_high_water: 150% }") == ["line 3: limits.spool_high_water: expected a share from 1% to 100%, such as 80%, found \"150%\""])
        #expect(problems("limits: { spool_high_water: 60%, max_concurrent_ingest: 64 }").isEmpty)
        #expect(problems("limits: { max_concurrent_ingest: 0 }").count == 1)
    }

    /// Problems found after parsing (files, sources, certificates) still name their line.
    @Test func loadingProblemsNameKeyLineAndFile() async throws {
        let fixture = try writeBinaryFixture(listen: "127.0.0.1:0", extra: """
            sinks:
              - { name: siem, type: http, url: "https://siem.test/", ca: missing-ca.pem }
            """)
        var configuration = try GatewayConfiguration.load(file: fixture.config)
        let error = try await #require(throws: ConfigurationError.self) { try await configuration.checkServable() }
        #expect(error.problems.map(\.description) == ["line 8: sinks[0].ca: no such file: \(fixture.directory)/missing-ca.pem"])
        #expect(error.description.hasPrefix("invalid configuration in \(fixture.config):"))

        // An osquery config source that does not parse, and a missing folder source.
        try Data("{ not json".utf8).write(to: URL(fileURLWithPath: fixture.directory + "/osquery.conf"))
        configuration = try GatewayConfiguration.load(file: fixture.config)
        configuration.sinks = []
        configuration.agentConfig.sources.append(.init(name: "packs", kind: .directory(fixture.directory + "/no-such-folder")))
        let sources = try await #require(throws: ConfigurationError.self) { try await configuration.checkServable() }
        let text = sources.problems.map(\.description)
        #expect(text.count == 2)
        #expect(text[0].hasPrefix("line 6: agent_config.sources[0].file: config source base cannot be used: \(fixture.directory)/osquery.conf is not valid JSON"))
        #expect(text[1] == "line 6: agent_config.sources[1].directory: no such folder: \(fixture.directory)/no-such-folder")
    }

    @Test func unsetEnvironmentSecretNamesItsLine() async throws {
        let fixture = try writeBinaryFixture(listen: "127.0.0.1:0")
        var configuration = try GatewayConfiguration.load(file: fixture.config)
        configuration.enrollment.secrets = [.init(name: "env", source: .environment("GW_TEST_NO_SUCH_VARIABLE"))]
        let error = try await #require(throws: ConfigurationError.self) { try await configuration.checkServable() }
        #expect(error.problems.map(\.description) == [
            "line 5: enrollment.secrets[0].env: environment variable GW_TEST_NO_SUCH_VARIABLE is not set"
        ])
    }
}
