import Foundation
import NIOCore
import Testing
@testable import Gateway

/// Issue 13 item 7, per sink: the real `osquery-gateway` process with one sink against its real
/// server, killed with SIGKILL while two agents log and the sink delivers. After a restart, every
/// line whose batch got a success body reaches the server at least once (a batch in flight at the
/// kill is sent again from the spool). For S3, nothing partial is ever visible: every object in the
/// bucket passes `zstd -t` and each of its lines is a JSON object.
///
/// Each case needs its server (`make test` starts them with `scripts/with-*.sh`; without one, that
/// case skips) and the built binary, and takes a few seconds: a second of logging with the kill
/// halfway, then the restarted gateway drains its spool.
@Suite(.enabled(if: FileManager.default.isExecutableFile(atPath: gatewayBinary), "needs the built binary"))
struct SinkCrashTests {
    /// One sink under test: its `sinks:` entry, what its server needs first, and the lines the server
    /// holds (records, messages, rows) for the ids to be found in.
    struct Target {
        var entry: String
        var prepare: () async throws -> Void = {}
        var stored: () async throws -> [String]
    }

    /// Ids are `<tag>-a<agent>-b<batch>-<n>`: the tag keeps one case's lines apart from everything
    /// else the shared servers hold. Lower-case hex, so it also fits names, subjects and tables.
    let tag = String(UUID().uuidString.prefix(8)).lowercased()

    @Test(.enabled(if: ProcessInfo.processInfo.environment["MOTO_URL"] != nil, "needs MOTO_URL (make test starts moto)"))
    func s3() async throws {
        let bucket = "crash-\(tag)"
        try await crashAndRestart(Target(
            entry: "{ name: lake, type: s3, bucket: \(bucket), prefix: crash/, region: us-east-1, endpoint: \"\(SinkServers.motoURL)\", "
                + "credentials_file: aws-credentials, roll_every: 1s, roll_size: 64KiB }",
            prepare: { try await SinkServers.createBucket(bucket) },
            stored: {
                var lines: [String] = []
                for object in try await SinkServers.objects(in: bucket, prefix: "crash/") {
                    let objectLines = try SinkServers.zstdLines(object.body)
                    for line in objectLines where (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any] == nil {
                        throw SinkServers.Failure(description: "\(object.key) holds a line that is not a JSON object: \(line.prefix(200))")
                    }
                    lines += objectLines
                }
                return lines
            }))
    }

    @Test(.enabled(if: ProcessInfo.processInfo.environment["MOTO_URL"] != nil, "needs MOTO_URL (make test starts moto)"))
    func kinesis() async throws {
        let stream = "crash-\(tag)"
        try await crashAndRestart(Target(
            entry: "{ name: stream, type: kinesis, stream: \(stream), region: us-east-1, endpoint: \"\(SinkServers.motoURL)\", "
                + "credentials_file: aws-credentials, batch: { max_records: 50, max_wait: 10ms } }",
            prepare: { try await SinkServers.createStream(stream) },
            stored: { try await SinkServers.records(in: stream) }))
    }

    @Test(.enabled(if: ProcessInfo.processInfo.environment["MOTO_URL"] != nil, "needs MOTO_URL (make test starts moto)"))
    func firehose() async throws {
        let bucket = "crash-hose-\(tag)"
        let stream = "crash-\(tag)"
        try await crashAndRestart(Target(
            entry: "{ name: hose, type: firehose, delivery_stream: \(stream), region: us-east-1, endpoint: \"\(SinkServers.motoURL)\", "
                + "credentials_file: aws-credentials, batch: { max_records: 100, max_wait: 10ms } }",
            prepare: {
                try await SinkServers.createBucket(bucket)
                try await SinkServers.createDeliveryStream(stream, bucket: bucket, prefix: "logs/")
            },
            stored: {
                try await SinkServers.objects(in: bucket, prefix: "logs/").flatMap { String(buffer: $0.body).split(separator: "\n").map(String.init) }
            }))
    }

    @Test(.enabled(if: ProcessInfo.processInfo.environment["NATS_URL"] != nil, "needs NATS_URL (make test starts nats-server)"))
    func nats() async throws {
        let stream = "CRASH\(tag.uppercased())"
        try await crashAndRestart(Target(
            entry: "{ name: bus, type: nats, url: \"\(SinkServers.natsURL)\", subject: \"crash\(tag).{log_type}\", "
                + "jetstream: { stream: \(stream) }, batch: { max_records: 50 } }",
            stored: { try await SinkServers.natsMessages(stream: stream) }))
    }

    @Test(.enabled(if: ProcessInfo.processInfo.environment["RSYSLOG_TCP_PORT"] != nil, "needs RSYSLOG_TCP_PORT (make test starts rsyslogd)"))
    func syslog() async throws {
        try await crashAndRestart(Target(
            entry: "{ name: siem, type: syslog, address: \"tcp://127.0.0.1:\(SinkServers.syslogPort)\", app_name: crash\(tag), batch: { max_records: 50 } }",
            stored: { SinkServers.syslogLines() }))
    }

    @Test(.enabled(if: ProcessInfo.processInfo.environment["POSTGRES_URL"] != nil, "needs POSTGRES_URL (make test starts PostgreSQL)"))
    func postgres() async throws {
        let table = "crash_\(tag)"
        try await crashAndRestart(Target(
            entry: "{ name: db, type: postgres, url: \"\(SinkServers.postgresURL)\", table: \(table), batch: { max_records: 50, max_wait: 10ms } }",
            stored: { try await SinkServers.postgresRecords(table: table) }))
    }

    // MARK: -

    /// Starts a gateway with `target`'s sink, logs from two agents for a second, SIGKILLs the
    /// gateway halfway, restarts it, and checks every acknowledged line reaches the server.
    func crashAndRestart(_ target: Target) async throws {
        let directory = makeTemporaryDirectory("sink-crash")
        let pki = try TestPKI(directory: directory + "/tls")
        let secret = "crash-secret"
        try Data(secret.utf8).write(to: URL(fileURLWithPath: directory + "/secret.txt"))
        try Data(#"{"options":{}}"#.utf8).write(to: URL(fileURLWithPath: directory + "/osquery.conf"))
        try Data(SinkServers.awsCredentialsFile.utf8).write(to: URL(fileURLWithPath: directory + "/aws-credentials"))
        let port = freeLoopbackPort()
        let config = directory + "/gateway.yaml"
        try Data("""
            listen: 127.0.0.1:\(port)
            data_dir: data
            log_level: error
            tls: { certificate: tls/server.pem, private_key: tls/server.key }
            enrollment: { secrets: [{ name: default, file: secret.txt }] }
            agent_config: { sources: [{ name: base, file: osquery.conf }] }
            spool: { commit_window: 5ms }
            sinks:
              - \(target.entry)
            """.utf8).write(to: URL(fileURLWithPath: config))
        try await target.prepare()

        let first = try GatewayProcess(config: config)
        let agents = try (0..<2).map { _ in
            try AgentEmulator(baseURL: "https://127.0.0.1:\(port)", caCertificate: pki.caCertificate, secret: secret)
        }
        for agent in agents {
            var enrolled = false
            for _ in 0..<100 where !enrolled {
                enrolled = (try? await agent.enroll())?.status == 200
                if !enrolled { try await Task.sleep(for: .milliseconds(100)) }
            }
            #expect(enrolled)
        }

        // Both agents log steadily while the sink delivers; the gateway dies in the middle of it.
        let tag = self.tag
        let acknowledged = try await logResults(from: agents, ids: { "\(tag)-a\($0)-b\($1)-\($2)" }, batchSize: 10, for: .milliseconds(1000)) {
            try await Task.sleep(for: .milliseconds(500))
            first.kill(SIGKILL)
        }
        #expect(acknowledged.count > 20)

        let gateway = try GatewayProcess(config: config)
        let expected = Set(acknowledged)
        var found = Set<String>()
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline, !expected.isSubset(of: found) {
            try await Task.sleep(for: .milliseconds(200))
            found = ids(in: (try? await target.stored()) ?? [])
        }
        // The last read must succeed as a whole: for S3, every object is complete.
        found = ids(in: try await target.stored())
        let missing = expected.subtracting(found)
        #expect(missing.isEmpty, "\(missing.count) of \(expected.count) acknowledged lines never arrived, e.g. \(missing.sorted().prefix(3))")
        gateway.kill(SIGKILL)
        for agent in agents { try await agent.shutdown() }
    }

    /// The ids of this case's lines, one per line.
    func ids(in lines: [String]) -> Set<String> {
        let pattern = "\(tag)-a[0-9]-b[0-9]+-[0-9]+"
        return Set(lines.compactMap { line in line.range(of: pattern, options: .regularExpression).map { String(line[$0]) } })
    }
}
