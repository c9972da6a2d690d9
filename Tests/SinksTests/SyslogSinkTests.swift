import Foundation
import NIOCore
@testable import Sinks
import Testing

/// The RFC 5424 layout, with no server.
@Suite struct SyslogMessageTests {
    @Test func aRecordBecomesAnOctetCountedRFC5424MessageWithEscapedStructuredData() {
        var result = record(1, name: #"pack "x" \ y]"#)
        result.receivedAt = Date(timeIntervalSince1970: 1_764_648_452.342)
        result.hostIdentifier = "web 01.example"
        let message = SyslogMessage(appName: "osquery", facility: .local0)
        let head = #"<134>1 2025-12-02T04:07:32.342000Z web_01.example osquery - result "#
            + #"[osquery@32473 host_identifier="web 01.example" name="pack \"x\" \\ y\]" log_type="result" node="node-1"] "#
        #expect(message.header(for: result) == head)
        var frame = ByteBuffer()
        message.writeFrame(result, into: &frame)
        let json = #"{"id":1,"node":"node-1"}"#
        #expect(String(buffer: frame) == "\(head.utf8.count + json.utf8.count) \(head)\(json)")
    }

    @Test func statusSeverityAndFacilityMakeThePriority() {
        func priority(_ facility: SyslogFacility, _ severity: Int?) -> String {
            let status = LogRecord(kind: .status, nodeID: "n", hostIdentifier: "", severity: severity, json: ByteBuffer(string: "{}"))
            let head = SyslogMessage(appName: "gw", facility: facility).header(for: status)
            return String(head.dropFirst().prefix(while: { $0 != ">" }))
        }
        // local0 = 16: 16 * 8 + severity; auth = 4; local7 = 23.
        #expect(priority(.local0, 0) == "134")
        #expect(priority(.local0, 1) == "132")
        #expect(priority(.local0, 2) == "131")
        #expect(priority(.local0, 3) == "130")
        #expect(priority(.auth, nil) == "38")
        #expect(priority(.local7, 0) == "190")
        let empty = LogRecord(kind: .status, nodeID: "n", hostIdentifier: "", json: ByteBuffer(string: "{}"))
        #expect(SyslogMessage(appName: "gw", facility: .user).header(for: empty).contains(" - gw - status [osquery@32473 host_identifier=\"\" log_type=\"status\" node=\"n\"] "))
        #expect(SyslogSink.isValidAppName("osquery"))
        #expect(!SyslogSink.isValidAppName("os query"))
        #expect(!SyslogSink.isValidAppName(String(repeating: "a", count: 49)))
    }

    @Test func addressesParse() {
        #expect(NetworkAddress(parsing: "tcp://127.0.0.1:6514", schemes: ["tcp", "tls"]) == NetworkAddress(scheme: "tcp", host: "127.0.0.1", port: 6514))
        #expect(NetworkAddress(parsing: "TLS://[::1]:6514", schemes: ["tcp", "tls"]) == NetworkAddress(scheme: "tls", host: "::1", port: 6514))
        #expect(NetworkAddress(parsing: "nats://u:p%40ss@nats.internal", schemes: ["nats"], defaultPort: 4222)
            == NetworkAddress(scheme: "nats", host: "nats.internal", port: 4222, user: "u", password: "p@ss"))
        #expect(NetworkAddress(parsing: "nats://u:p@h:4222", schemes: ["nats"])?.description == "nats://h:4222")
        for bad in ["udp://h:514", "tcp://h", "tcp://:514", "tcp://h:0", "tcp://h:99999", "tcp://h:514/x", "h:514"] {
            #expect(NetworkAddress(parsing: bad, schemes: ["tcp", "tls"]) == nil, "\(bad)")
        }
        #expect(NetworkAddress(scheme: "tcp", host: "10.0.0.1", port: 1).hostIsIPAddress)
        #expect(!NetworkAddress(scheme: "tcp", host: "syslog.internal", port: 1).hostIsIPAddress)
    }
}

/// The syslog sink against a real rsyslogd (started by `scripts/with-rsyslog.sh`, which `make test`
/// uses) that writes every message it receives to a file in RFC 5424 form.
@Suite(.enabled(if: ProcessInfo.processInfo.environment["RSYSLOG_TCP_PORT"] != nil, "needs RSYSLOG_TCP_PORT (make test starts rsyslogd)"))
struct SyslogRsyslogTests {
    let environment = ProcessInfo.processInfo.environment

    /// Records of three nodes with quotes, backslashes, non-ASCII text, a long line and a status
    /// line, all with a receive time the spool keeps exactly (milliseconds).
    func records(count: Int, from start: Int = 0) -> [LogRecord] {
        (start..<start + count).map { i in
            var item = record(i, node: ["a", "b", "c"][i % 3], name: i % 5 == 0 ? "pack_q \"\(i)\"" : "pack_test_q", pad: i % 50 == 7 ? 20_000 : 0)
            if i % 7 == 0 { item.json = ByteBuffer(string: #"{"id":\#(i),"node":"\#(["a", "b", "c"][i % 3])","msg":"é \"quoted\" \\ ] end"}"#) }
            if i % 11 == 0 {
                item.kind = .status
                item.queryName = nil
                item.severity = 1
            }
            item.receivedAt = Date(timeIntervalSince1970: 1_764_648_452.342 + Double(i))
            return item
        }
    }

    /// The lines of `file` that `appName` sent.
    func received(in file: String, appName: String) -> [String] {
        let text = (try? String(contentsOfFile: file, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").map(String.init).filter { $0.contains(" \(appName) - ") }
    }

    func sink(port: Int, appName: String) throws -> SyslogSink {
        var configuration = SyslogSink.Configuration(name: "syslog", address: NetworkAddress(scheme: "tcp", host: "127.0.0.1", port: port))
        configuration.appName = appName
        configuration.batching = Batching(maxRecords: 40, maxBytes: 1 << 20)
        return try SyslogSink(configuration: configuration)
    }

    @Test func recordsReadBackFromRsyslogEqualWhatWasSentLineByLine() async throws {
        let port = Int(environment["RSYSLOG_TCP_PORT"]!)!
        let file = environment["RSYSLOG_OUTPUT_FILE"]!
        let appName = "osq-\(UUID().uuidString.prefix(8))"
        let syslog = try sink(port: port, appName: appName)
        let sent = records(count: 300)
        try await withPipeline([.init(sink: syslog)]) { pipeline in
            for start in stride(from: 0, to: 300, by: 30) { try await pipeline.append(Array(sent[start..<start + 30])) }
            #expect(await eventually { received(in: file, appName: appName).count >= 300 })
        }
        let message = SyslogMessage(appName: appName, facility: .local0)
        let lines = received(in: file, appName: appName)
        #expect(lines.count == 300)
        #expect(lines == sent.map { message.header(for: $0) + String(buffer: $0.json) })
    }

    @Test func aReceiverDownThenBackLosesNothingAndKeepsOrder() async throws {
        let rsyslogd = try #require(environment["RSYSLOGD"])
        let directory = temporaryDirectory("rsyslog")
        let port = freePort()
        let file = directory + "/received.log"
        try FileManager.default.createDirectory(atPath: directory + "/work", withIntermediateDirectories: true)
        try """
            global(workDirectory="\(directory)/work" maxMessageSize="1m")
            module(load="imtcp")
            input(type="imtcp" port="\(port)" address="127.0.0.1" ruleset="received")
            ruleset(name="received") { action(type="omfile" file="\(file)" template="RSYSLOG_SyslogProtocol23Format") }
            """.write(toFile: directory + "/rsyslog.conf", atomically: true, encoding: .utf8)
        func start() async throws -> ServerProcess {
            let server = try ServerProcess(rsyslogd, ["-n", "-f", directory + "/rsyslog.conf", "-i", directory + "/rsyslogd.pid"])
            #expect(await eventually(timeout: .seconds(10)) { isListening(port) })
            return server
        }
        let appName = "osq-outage"
        let syslog = try sink(port: port, appName: appName)
        let sent = records(count: 120)
        try await withPipeline([.init(sink: syslog)], directory: directory) { pipeline in
            // Nothing listens yet: the batches wait in the spool.
            try await pipeline.append(Array(sent[0..<60]))
            try await Task.sleep(for: .milliseconds(300))
            var server = try await start()
            #expect(await eventually { received(in: file, appName: appName).count == 60 })
            // The receiver stops with the sink connected, and comes back.
            server.stop()
            try await Task.sleep(for: .milliseconds(300))
            try await pipeline.append(Array(sent[60..<120]))
            try await Task.sleep(for: .milliseconds(300))
            server = try await start()
            #expect(await eventually { received(in: file, appName: appName).count >= 120 })
            server.stop()
        }
        let message = SyslogMessage(appName: appName, facility: .local0)
        #expect(received(in: file, appName: appName) == sent.map { message.header(for: $0) + String(buffer: $0.json) })
    }
}

/// `tls://` against `openssl s_server` with a certificate made for the test: the frames arrive
/// unchanged, and a receiver whose certificate the CA does not vouch for fails the health check.
@Suite(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/openssl"), "needs /usr/bin/openssl"))
struct SyslogTLSTests {
    @Test func framesArriveOverTLSAndAnUntrustedReceiverFailsTheHealthCheck() async throws {
        let directory = temporaryDirectory("syslog-tls")
        let server = try TestCertificates(in: directory, name: "server")
        let other = try TestCertificates(in: directory, name: "other")
        let port = freePort()
        let output = directory + "/received"
        let receiver = try ServerProcess("/usr/bin/openssl", [
            "s_server", "-accept", "127.0.0.1:\(port)", "-cert", server.certificate, "-key", server.key, "-quiet",
        ], output: output)
        defer { receiver.stop() }
        #expect(await eventually(timeout: .seconds(10)) { isListening(port) })

        var configuration = SyslogSink.Configuration(name: "syslog-tls", address: NetworkAddress(scheme: "tls", host: "127.0.0.1", port: port))
        configuration.ca = server.ca
        let syslog = try SyslogSink(configuration: configuration)
        let batch = (0..<20).map { record($0, node: "n\($0 % 2)") }
        try await syslog.healthCheck()
        #expect(await syslog.deliver(batch) == .delivered)
        var expected = ByteBuffer()
        let message = SyslogMessage(appName: "osquery", facility: .local0)
        for item in batch { message.writeFrame(item, into: &expected) }
        #expect(await eventually { (try? String(contentsOfFile: output, encoding: .utf8)) == String(buffer: expected) })
        await syslog.close()

        configuration.ca = other.ca
        let untrusting = try SyslogSink(configuration: configuration)
        await #expect(throws: (any Error).self) { try await untrusting.healthCheck() }
        guard case .retry = await untrusting.deliver(batch) else {
            Issue.record("a receiver the CA does not vouch for must be retried")
            return
        }
        await untrusting.close()
    }
}
