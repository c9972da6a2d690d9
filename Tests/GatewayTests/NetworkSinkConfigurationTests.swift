import Foundation
import Sinks
import Support
import Testing
@testable import Gateway

/// `type: syslog` and `type: nats` entries: their keys, defaults, and problems named by key and line.
@Suite struct NetworkSinkConfigurationTests {
    let head = minimalConfigurationYAML + "sinks:\n"

    @Test func syslogAndNATSSinksReadTheirKeys() throws {
        let yaml = head + """
              - { name: siem, type: syslog, address: "tls://siem.internal:6514", app_name: gw, facility: auth,
                  ca: tls/siem-ca.pem, timeout: 10s, batch: { max_records: 200 } }
              - { name: plain, type: syslog, address: "tcp://127.0.0.1:514" }
              - { name: bus, type: nats, url: "nats://gw:${NATS_PASSWORD}@127.0.0.1", subject: "osquery.{log_type}.{name}",
                  jetstream: { stream: OSQUERY }, timeout: 3s }
              - { name: secure, type: nats, url: "nats://nats.internal",
                  tls: { ca: tls/nats-ca.pem, client_certificate: tls/gw.pem, client_key: tls/gw.key, server_name: nats.example } }
              - { name: tlsurl, type: nats, url: "tls://nats.internal:4443" }
            """
        let configuration = try GatewayConfiguration.parse(yaml: yaml, baseDirectory: "/etc/gw", environment: ["NATS_PASSWORD": "s3cret"])
        guard case .syslog(let siem) = configuration.sinks[0].kind, case .syslog(let plain) = configuration.sinks[1].kind,
            case .nats(let bus) = configuration.sinks[2].kind
        else {
            Issue.record("sink kinds")
            return
        }
        #expect(siem.address == NetworkAddress(scheme: "tls", host: "siem.internal", port: 6514))
        #expect(siem.appName == "gw" && siem.facility == .auth && siem.ca == "/etc/gw/tls/siem-ca.pem")
        #expect(siem.writeTimeout == .seconds(10) && siem.batching.maxRecords == 200)
        #expect(plain.appName == "osquery" && plain.facility == .local0 && plain.ca == nil)
        #expect(bus.address == NetworkAddress(scheme: "nats", host: "127.0.0.1", port: 4222, user: "gw", password: "s3cret"))
        #expect(bus.subject.text == "osquery.{log_type}.{name}")
        #expect(bus.stream == "OSQUERY" && bus.streamSubjects == nil && bus.ackTimeout == .seconds(3))
        #expect(bus.tls == nil && !bus.requiresTLS)
        guard case .nats(let secure) = configuration.sinks[3].kind, case .nats(let tlsURL) = configuration.sinks[4].kind else {
            Issue.record("nats sinks with TLS")
            return
        }
        #expect(secure.tls == NATSTLS(ca: "/etc/gw/tls/nats-ca.pem",
                                      clientCertificate: HTTPEndpoint.ClientCertificate(certificate: "/etc/gw/tls/gw.pem", privateKey: "/etc/gw/tls/gw.key"),
                                      serverName: "nats.example"))
        #expect(secure.requiresTLS && secure.address == NetworkAddress(scheme: "nats", host: "nats.internal", port: 4222))
        #expect(tlsURL.tls == nil && tlsURL.requiresTLS && tlsURL.address == NetworkAddress(scheme: "tls", host: "nats.internal", port: 4443))
        #expect(configuration.sinks.map(\.directory) == [nil, nil, nil, nil, nil])
    }

    @Test func problemsNameTheKeyAndLine() throws {
        let yaml = head + """
              - { name: a, type: syslog, address: "udp://h:514", app_name: "two words" }
              - { name: b, type: syslog, address: "tcp://h:514", facility: local9, ca: ca.pem }
              - { name: c, type: nats, url: "tls://h:4222", tls: { client_key: gw.key, server_name: "a b" } }
              - { name: d, type: nats, url: "nats://h", subject: "osquery.{query}" }
              - { name: e, type: nats, url: "nats://h", subject: "{log_type}.x", jetstream: { stream: "A.B" } }
            """
        let text = try configurationProblems(yaml)
        #expect(text.contains("line 8: sinks[0].address: expected tcp://host:port or tls://host:port, found \"udp://h:514\""))
        #expect(!text.contains { $0.contains("sinks[0].app_name: unknown key") })
        #expect(text.contains("line 9: sinks[1].facility: expected one of \(SyslogFacility.allCases.map(\.rawValue).joined(separator: ", ")), found \"local9\""))
        #expect(text.contains("line 9: sinks[1].ca: ca, client_certificate and client_key are for tls:// addresses only"))
        #expect(text.contains("line 10: sinks[2].tls.client_key: client_certificate and client_key go together"))
        #expect(text.contains("line 10: sinks[2].tls.server_name: expected a host name, found \"a b\""))
        #expect(!text.contains { $0.contains("sinks[2].url") })
        #expect(text.contains("line 11: sinks[3].subject: unknown placeholder {query}; use {log_type}, {name}, {host_identifier} or {node}"))
        #expect(text.contains("line 12: sinks[4].jetstream.stream: a stream name cannot be empty or hold spaces, ., *, >, / or \\"))
        #expect(text.contains { $0.hasPrefix("line 12: sinks[4].jetstream.subjects: is needed") })
    }
}
