import Foundation
import NIOCore
@testable import Sinks
import Testing

/// Subject templates and the protocol parser, with no server (the bytes are what nats-server 2.9 sends).
@Suite struct NATSProtocolTests {
    @Test func subjectsSanitizeEveryPlaceholderIntoOneToken() throws {
        let template = try NATSSubjectTemplate("osquery.{log_type}.{name}")
        #expect(template.subject(for: record(1, name: "pack.a b*>c")) == "osquery.result.pack_a_b__c")
        var status = record(2, kind: .status)
        status.queryName = nil
        #expect(template.subject(for: status) == "osquery.status._")
        #expect(template.streamSubjects == ["osquery.>"])
        let full = try NATSSubjectTemplate("logs.{host_identifier}.{node}.x-{log_type}")
        var item = record(3, node: "n.1")
        item.hostIdentifier = "web 01.example"
        #expect(full.subject(for: item) == "logs.web_01_example.n_1.x-result")
        #expect(full.streamSubjects == ["logs.>"])
        #expect(try NATSSubjectTemplate("osquery.all").streamSubjects == ["osquery.all"])
        #expect(try NATSSubjectTemplate("{log_type}.osquery").streamSubjects == nil)
        #expect(NATSSubjectTemplate.token("") == "_")
        #expect(NATSSubjectTemplate.token("é\tx") == "é_x")
    }

    @Test(arguments: ["osquery.{query}", "osquery.{name", "osquery..{name}", ".osquery", "osquery.", "osquery.*", "osquery.>", "a b.{name}", "x}.{name}", ""])
    func invalidTemplatesAreRefused(_ text: String) {
        #expect(throws: NATSSubjectTemplate.Invalid.self) { try NATSSubjectTemplate(text) }
    }

    @Test func theParserReadsWhatTheServerSends() throws {
        var buffer = ByteBuffer(string: "INFO {\"max_payload\":1048576,\"headers\":true} \r\nPING\r\n+OK\r\n-ERR 'Authorization Violation'\r\n")
        buffer.writeString("MSG _INBOX.x.5 1  29\r\n{\"stream\":\"OSQUERY\", \"seq\":1}\r\n")
        buffer.writeString("HMSG _INBOX.x.6 1 16 16\r\nNATS/1.0 503\r\n\r\n\r\n")
        buffer.writeString("MSG inbox 2 reply.to 3\r\nabc\r\nPONG\r\nMSG _INBOX.x.7 1 9\r\npart")
        var operations: [NATSServerOperation] = []
        while let operation = try NATSProtocol.next(from: &buffer) { operations.append(operation) }
        #expect(operations.count == 8)
        guard operations.count == 8 else { return }
        if case .info(let text) = operations[0] { #expect(text == "{\"max_payload\":1048576,\"headers\":true} ") } else { Issue.record("INFO") }
        if case .ping = operations[1] {} else { Issue.record("PING") }
        if case .ok = operations[2] {} else { Issue.record("+OK") }
        if case .error(let text) = operations[3] { #expect(text == "Authorization Violation") } else { Issue.record("-ERR") }
        if case .message(let message) = operations[4] {
            #expect(message.subject == "_INBOX.x.5" && message.replyTo == nil && message.status == nil)
            #expect(NATSJetStream.ack(message, subject: "s") == .stored)
        } else { Issue.record("MSG") }
        if case .message(let message) = operations[5] {
            #expect(message.status == 503 && message.payload.readableBytes == 0)
            #expect(NATSJetStream.ack(message, subject: "osquery.x") == .failed(code: 503, reason: "no JetStream stream takes subject osquery.x"))
        } else { Issue.record("HMSG") }
        if case .message(let message) = operations[6] {
            #expect(message.replyTo == "reply.to" && String(buffer: message.payload) == "abc")
        } else { Issue.record("MSG with reply") }
        if case .pong = operations[7] {} else { Issue.record("PONG") }
        // The last message is incomplete: nothing of it is consumed until the rest arrives.
        #expect(String(buffer: buffer) == "MSG _INBOX.x.7 1 9\r\npart")
        buffer.writeString("-rest\r\n")
        guard case .message(let last)? = try NATSProtocol.next(from: &buffer) else {
            Issue.record("completed MSG")
            return
        }
        #expect(String(buffer: last.payload) == "part-rest")
        #expect(buffer.readableBytes == 0)
        var garbage = ByteBuffer(string: "HELLO\r\n")
        #expect(throws: NATSProtocol.ProtocolError.self) { try NATSProtocol.next(from: &garbage) }
    }

    @Test func acknowledgementsAreReadAsStoredOrFailedWithTheirCode() {
        func ack(_ payload: String) -> NATSJetStream.Ack {
            NATSJetStream.ack(NATSMessage(subject: "_INBOX.x.1", payload: ByteBuffer(string: payload)), subject: "osquery.result.q")
        }
        #expect(ack(#"{"stream":"OSQUERY", "seq":12}"#) == .stored)
        #expect(ack(#"{"stream":"OSQUERY","seq":12,"duplicate":true}"#) == .stored)
        #expect(ack(#"{"error":{"code":400,"err_code":10054,"description":"message size exceeds maximum allowed"},"stream":"SMALL","seq":0}"#)
            == .failed(code: 400, reason: "JetStream error 400/10054 for subject osquery.result.q: message size exceeds maximum allowed"))
        #expect(ack("hello") == .failed(code: 0, reason: "not a JetStream acknowledgement: hello"))
    }
}

/// A JetStream client for the tests, on the sink's own connection code.
struct JetStreamReader {
    let connection: NATSConnection

    /// - Parameter tls: TLS the reader insists on, as the sink would with these settings.
    init(url: String, tls: NATSTLS? = nil) async throws {
        let address = try #require(NetworkAddress(parsing: url, schemes: ["nats"], defaultPort: 4222))
        let upgrade = try tls.map { NATSConnection.TLSUpgrade(context: try $0.makeContext(), required: true, serverName: $0.serverName) }
        connection = try await NATSConnection.connect(to: address, name: "tests", timeout: .seconds(5), tls: upgrade)
    }

    func call(_ subject: String, _ payload: String = "") async throws -> [String: Any] {
        let answer = try await connection.request(subject: subject, payload: ByteBuffer(string: payload), timeout: .seconds(5))
        return try #require(try JSONSerialization.jsonObject(with: Data(answer.payload.readableBytesView)) as? [String: Any])
    }

    /// How many messages `stream` holds (0 when it does not exist).
    func count(_ stream: String) async -> Int {
        let info = try? await call("$JS.API.STREAM.INFO.\(stream)")
        return ((info?["state"] as? [String: Any])?["messages"] as? Int) ?? 0
    }

    /// Every message of `stream` in order: its subject and payload.
    func messages(_ stream: String) async throws -> [(subject: String, payload: String)] {
        var result: [(subject: String, payload: String)] = []
        let total = await count(stream)
        guard total > 0 else { return [] }
        for seq in 1...total {
            let answer = try await call("$JS.API.STREAM.MSG.GET.\(stream)", "{\"seq\":\(seq)}")
            guard let message = answer["message"] as? [String: Any], let subject = message["subject"] as? String,
                let data = (message["data"] as? String).flatMap({ Data(base64Encoded: $0) })
            else { break }
            result.append((subject: subject, payload: String(decoding: data, as: UTF8.self)))
        }
        return result
    }

    func createStream(_ stream: String, subjects: [String], extra: String = "") async throws {
        let list = subjects.map { "\"\($0)\"" }.joined(separator: ",")
        _ = try await call("$JS.API.STREAM.CREATE.\(stream)", "{\"name\":\"\(stream)\",\"subjects\":[\(list)]\(extra)}")
    }

    func close() { connection.close() }
}

/// The nats sink against a real nats-server with JetStream (started by `scripts/with-nats.sh`, which
/// `make test` uses). Each test has a stream and subject prefix of its own.
@Suite(.enabled(if: ProcessInfo.processInfo.environment["NATS_URL"] != nil, "needs NATS_URL (make test starts nats-server)"))
struct NATSSinkTests {
    let environment = ProcessInfo.processInfo.environment
    var url: String { environment["NATS_URL"] ?? "" }

    func unique(_ label: String) -> String { "\(label)\(UUID().uuidString.prefix(8).lowercased())" }

    func sink(url: String, subject: String, stream: String?, maxBytes: Int = 1 << 20) throws -> NATSSink {
        var configuration = NATSSink.Configuration(
            name: "bus", address: try #require(NetworkAddress(parsing: url, schemes: ["nats"], defaultPort: 4222)),
            subject: try NATSSubjectTemplate(subject))
        configuration.stream = stream
        configuration.ackTimeout = .seconds(5)
        configuration.batching = Batching(maxRecords: 25, maxBytes: maxBytes)
        return try NATSSink(configuration: configuration)
    }

    /// Messages in `stream` according to the monitoring endpoint's `/jsz?streams=true`.
    func monitoredCount(_ stream: String) throws -> Int {
        let (_, output) = try run(["curl", "-sf", (environment["NATS_MONITOR_URL"] ?? "") + "/jsz?streams=true"])
        let root = try JSONSerialization.jsonObject(with: output) as? [String: Any]
        let accounts = root?["account_details"] as? [[String: Any]] ?? []
        let streams = accounts.flatMap { $0["stream_detail"] as? [[String: Any]] ?? [] }
        let detail = streams.first(where: { ($0["name"] as? String) == stream })
        let state = detail?["state"] as? [String: Any]
        return state?["messages"] as? Int ?? 0
    }

    @Test func recordsReadBackFromTheStreamEqualWhatWasSentInOrder() async throws {
        let stream = unique("OSQ").uppercased()
        let prefix = unique("t")
        let bus = try sink(url: url, subject: "\(prefix).{log_type}.{name}", stream: stream)
        var sent: [LogRecord] = []
        for i in 0..<150 {
            var item = record(i, node: ["a", "b", "c"][i % 3], name: i % 4 == 0 ? "pack.a b" : "pack_test_q")
            if i % 10 == 0 { item.json = ByteBuffer(string: #"{"id":\#(i),"msg":"é \"q\" \\"}"#) }
            sent.append(item)
        }
        try await withPipeline([.init(sink: bus)]) { pipeline in
            for start in stride(from: 0, to: 150, by: 30) { try await pipeline.append(Array(sent[start..<start + 30])) }
            #expect(await eventually { (try? monitoredCount(stream)) == 150 })
        }
        let reader = try await JetStreamReader(url: url)
        let stored = try await reader.messages(stream)
        reader.close()
        #expect(stored.map { $0.payload } == sent.map { String(buffer: $0.json) })
        #expect(stored.map { $0.subject } == sent.map { "\(prefix).result.\($0.queryName == "pack.a b" ? "pack_a_b" : "pack_test_q")" })
    }

    @Test func aSubjectNoStreamTakesIsRetriedThenDeliveredOnceTheStreamExists() async throws {
        let prefix = unique("nostream")
        let bus = try sink(url: url, subject: "\(prefix).{log_type}", stream: nil)
        let batch = (0..<5).map { record($0) }
        guard case .retry(let reason, _) = await bus.deliver(batch) else {
            Issue.record("a publish no stream takes must be retried")
            return
        }
        #expect(reason == "5 of 5 messages not stored: no JetStream stream takes subject \(prefix).result")
        let reader = try await JetStreamReader(url: url)
        let stream = prefix.uppercased()
        try await reader.createStream(stream, subjects: ["\(prefix).>"])
        #expect(await bus.deliver(batch) == .delivered)
        #expect(try await reader.messages(stream).map { $0.payload } == batch.map { String(buffer: $0.json) })
        reader.close()
        await bus.close()
    }

    @Test func recordsTheServerOrTheStreamRefuseAreRefusedAloneAndTheOthersStored() async throws {
        let prefix = unique("small")
        let stream = prefix.uppercased()
        let reader = try await JetStreamReader(url: url)
        try await reader.createStream(stream, subjects: ["\(prefix).>"], extra: ",\"max_msg_size\":2000")
        let bus = try sink(url: url, subject: "\(prefix).{log_type}", stream: stream)
        // 3000 bytes: over the stream's max_msg_size (400 from JetStream); 1.1 MB: over max_payload (never sent).
        let batch = [record(0), record(1, pad: 3_000), record(2), record(3, pad: 1_100_000), record(4)]
        #expect(await bus.deliver(batch) == .partlyRejected(indices: [1, 3], reason:
            "1 records over the server's max_payload of 1048576 bytes were not published; "
            + "1 messages refused: JetStream error 400/10054 for subject \(prefix).result: message size exceeds maximum allowed"))
        #expect(try await reader.messages(stream).map { $0.payload } == [0, 2, 4].map { String(buffer: batch[$0].json) })
        // The connection survived: the next batch goes through.
        #expect(await bus.deliver([record(5)]) == .delivered)
        #expect(await reader.count(stream) == 4)
        reader.close()
        await bus.close()
    }

    @Test func onlyTheRefusedRecordsReachTheDeadLetterFile() async throws {
        let prefix = unique("deadletter")
        let stream = prefix.uppercased()
        let directory = temporaryDirectory("nats-deadletter")
        let reader = try await JetStreamReader(url: url)
        try await reader.createStream(stream, subjects: ["\(prefix).>"], extra: ",\"max_msg_size\":2000")
        let bus = try sink(url: url, subject: "\(prefix).{log_type}", stream: stream, maxBytes: 4 << 20)
        let batch = [record(0), record(1, pad: 3_000), record(2), record(3, pad: 1_100_000), record(4)]
        try await withPipeline([.init(sink: bus)], directory: directory) { pipeline in
            try await pipeline.append(batch)
            #expect(await eventually { deadLetters(directory + "/deadletter/bus.jsonl").count == 2 })
            try await pipeline.append([record(5)])
            #expect(await eventually { await reader.count(stream) == 4 })
        }
        let reason = "1 records over the server's max_payload of 1048576 bytes were not published; "
            + "1 messages refused: JetStream error 400/10054 for subject \(prefix).result: message size exceeds maximum allowed"
        #expect(deadLetters(directory + "/deadletter/bus.jsonl") == [1, 3].map {
            DeadLetter(sink: "bus", reason: reason, record: String(buffer: batch[$0].json))
        })
        #expect(try await reader.messages(stream).map { $0.payload } == [0, 2, 4].map { String(buffer: batch[$0].json) } + [String(buffer: record(5).json)])
        reader.close()
    }

    @Test func aServerDownThenBackLosesNothingAndKeepsOrder() async throws {
        let binary = try #require(environment["NATS_SERVER"])
        let directory = temporaryDirectory("nats")
        let port = freePort()
        let serverURL = "nats://127.0.0.1:\(port)"
        func start() async throws -> ServerProcess {
            let server = try ServerProcess(binary, ["-a", "127.0.0.1", "-p", "\(port)", "-js", "-sd", directory + "/store"])
            #expect(await eventually(timeout: .seconds(10)) { isListening(port) })
            return server
        }
        let stream = "OUTAGE"
        let bus = try sink(url: serverURL, subject: "outage.{log_type}.{name}", stream: stream)
        let sent = (0..<100).map { record($0, node: ["a", "b"][$0 % 2]) }
        try await withPipeline([.init(sink: bus)], directory: directory) { pipeline in
            // Nothing listens yet: the batches wait in the spool.
            try await pipeline.append(Array(sent[0..<50]))
            try await Task.sleep(for: .milliseconds(300))
            var server = try await start()
            var reader = try await JetStreamReader(url: serverURL)
            #expect(await eventually { await reader.count(stream) == 50 })
            reader.close()
            // The server stops with the sink connected, and comes back with its storage.
            server.stop()
            try await pipeline.append(Array(sent[50..<100]))
            try await Task.sleep(for: .milliseconds(300))
            server = try await start()
            reader = try await JetStreamReader(url: serverURL)
            #expect(await eventually { await reader.count(stream) >= 100 })
            #expect(try await reader.messages(stream).map { $0.payload } == sent.map { String(buffer: $0.json) })
            reader.close()
            server.stop()
        }
    }
}
