// Sink throughput benchmark (issues #3 and #13): the zstd archive sink and the file sink on the same
// osquery JSON lines that the shell script feeds to `zstd -3 -T1` and `dd conv=fdatasync`, and each
// network sink against its real server.
//
//   sink-bench generate <file> <megabytes>   writes deterministic osquery result lines
//   sink-bench zstd <file> <out-dir>          archives them (level 3), prints MB/s per CPU second
//   sink-bench file <file> <out-dir>          writes them with the file sink, prints MB/s (wall)
//   sink-bench sink <kind> <file> <records> <tag>
//                                             delivers the first <records> lines with the sink <kind>
//                                             (s3, kinesis, firehose, nats, syslog, postgres, ndjson,
//                                             kafka_rest, otlp) to the server the environment names
//                                             (MOTO_URL, NATS_URL, RSYSLOG_TCP_PORT, POSTGRES_URL,
//                                             BENCH_HTTP_URL); bucket, streams and table are named after
//                                             <tag> (the script makes the AWS ones); prints records per
//                                             CPU second of this process
import Foundation
import Logging
import NIOCore
import Sinks
import Support

func cpuSeconds() -> Double {
    var usage = rusage()
    getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
    return Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6
        + Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6
}

func records(from path: String) -> [LogRecord] {
    let data = FileManager.default.contents(atPath: path)!
    let buffer = ByteBuffer(bytes: data)
    var records: [LogRecord] = []
    var start = 0
    buffer.withUnsafeReadableBytes { bytes in
        for i in 0..<bytes.count where bytes[i] == 0x0A {
            records.append(LogRecord(kind: .result, nodeID: "n", hostIdentifier: "h", json: buffer.getSlice(at: start, length: i - start)!))
            start = i + 1
        }
    }
    return records
}

func batches(_ records: [LogRecord], size: Int = 10_000) -> [[LogRecord]] {
    stride(from: 0, to: records.count, by: size).map { Array(records[$0..<min($0 + size, records.count)]) }
}

/// `records` cut as a delivery worker would: at most `maxRecords` and about `maxBytes` a batch.
func batches(_ records: [LogRecord], batching: Batching) -> [[LogRecord]] {
    var result: [[LogRecord]] = []
    var current: [LogRecord] = []
    var bytes = 0
    for record in records {
        if !current.isEmpty, current.count >= batching.maxRecords || bytes + record.json.readableBytes > batching.maxBytes {
            result.append(current)
            current = []
            bytes = 0
        }
        current.append(record)
        bytes += record.json.readableBytes
    }
    if !current.isEmpty { result.append(current) }
    return result
}

struct BenchError: Error, CustomStringConvertible {
    var description: String
}

/// The sink `kind` against the server its environment variable names, on that sink's own defaults
/// (batching included); the S3 sink rolls every 16 MiB so a run makes several objects.
func makeSink(_ kind: String, tag: String, environment: [String: String]) throws -> any Sink {
    func required(_ name: String) throws -> String {
        guard let value = environment[name], !value.isEmpty else { throw BenchError(description: "\(name) is not set") }
        return value
    }
    func aws() throws -> AWSConnection {
        var connection = AWSConnection(region: "us-east-1", endpoint: try required("MOTO_URL"),
                                       credentials: .fixed(AWSCredentials(accessKeyID: "AKIDBENCH", secretAccessKey: "moto-takes-any-secret")))
        connection.requestTimeout = .seconds(120)
        return connection
    }
    switch kind {
    case "s3":
        var configuration = S3Sink.Configuration(name: "bench", bucket: "bench-\(tag)", connection: try aws())
        configuration.prefix = "bench/"
        configuration.rollSize = 16 << 20
        return try S3Sink(configuration: configuration)
    case "kinesis":
        return try KinesisSink(configuration: KinesisSink.Configuration(name: "bench", stream: "bench-\(tag)", connection: try aws()))
    case "firehose":
        return try FirehoseSink(configuration: FirehoseSink.Configuration(name: "bench", deliveryStream: "bench-\(tag)", connection: try aws()))
    case "nats":
        let url = try required("NATS_URL")
        guard let address = NetworkAddress(parsing: url, schemes: ["nats"], defaultPort: 4222) else {
            throw BenchError(description: "NATS_URL \(url) is not a nats:// URL")
        }
        var configuration = NATSSink.Configuration(name: "bench", address: address, subject: try NATSSubjectTemplate("bench\(tag).{log_type}"))
        configuration.stream = "BENCH\(tag.uppercased())"
        return try NATSSink(configuration: configuration)
    case "syslog":
        guard let port = Int(try required("RSYSLOG_TCP_PORT")) else { throw BenchError(description: "RSYSLOG_TCP_PORT is not a port") }
        return try SyslogSink(configuration: SyslogSink.Configuration(name: "bench", address: NetworkAddress(scheme: "tcp", host: "127.0.0.1", port: port)))
    case "postgres":
        var configuration = PostgresSink.Configuration(name: "bench", endpoint: try PostgresEndpoint(url: try required("POSTGRES_URL")))
        configuration.table = "bench_\(tag)"
        var logger = Logger(label: "sink-bench")
        logger.logLevel = .critical
        return try PostgresSink(configuration: configuration, logger: logger)
    case "ndjson", "kafka_rest", "otlp":
        let base = try required("BENCH_HTTP_URL")
        let path = kind == "kafka_rest" ? "/topics/bench" : (kind == "otlp" ? "/v1/logs" : "/ingest")
        var configuration = HTTPForwarderSink.Configuration(name: "bench", url: base + path)
        configuration.format = HTTPForwarderFormat(rawValue: kind) ?? .ndjson
        return try HTTPForwarderSink(configuration: configuration)
    default:
        throw BenchError(description: "unknown sink \(kind)")
    }
}

let arguments = CommandLine.arguments
switch arguments.count > 1 ? arguments[1] : "" {
case "generate":
    let target = Int(arguments[3])! << 20
    var out = ""
    out.reserveCapacity(target + 4096)
    var i = 0
    let names = ["pack_incident-response_process_events", "pack_it-compliance_deb_packages", "pack_osquery-monitoring_schedule", "listening_ports"]
    let users = ["root", "daemon", "www-data", "postgres", "alice", "bob"]
    while out.utf8.count < target {
        let host = "host-\(i % 500)"
        out += #"{"name":"\#(names[i % names.count])","hostIdentifier":"\#(host)","calendarTime":"Tue Mar  3 14:05:06 2026 UTC","unixTime":\#(1_772_546_706 + i / 100),"epoch":0,"counter":\#(i % 97),"numerics":false,"decorations":{"host_uuid":"4c4c4544-\#(String(format: "%04d", i % 500))-8010-8048-b2c04f505732","username":"\#(users[i % users.count])"},"columns":{"pid":"\#(1000 + i % 30000)","path":"/usr/lib/\#(names[i % 3])/bin/worker\#(i % 17)","cmdline":"worker --id \#(i) --mode \#(i % 3 == 0 ? "fast" : "safe")","uid":"\#(i % 1001)","start_time":"\#(1_772_540_000 + i)"},"action":"\#(i % 5 == 0 ? "removed" : "added")"}"#
        out += "\n"
        i += 1
    }
    try! out.write(toFile: arguments[2], atomically: false, encoding: .utf8)
case "zstd":
    let input = records(from: arguments[2])
    let bytes = input.reduce(0) { $0 + $1.json.readableBytes + 1 }
    let sink = try! ZstdArchiveSink(configuration: .init(name: "bench", directory: arguments[3], level: 3))
    let cpu = cpuSeconds()
    let wall = ContinuousClock.now
    for batch in batches(input, size: sink.batching.maxRecords) {
        let outcome = await sink.deliver(batch)
        precondition(outcome == .delivered)
    }
    await sink.close()
    let seconds = cpuSeconds() - cpu
    let elapsed = ContinuousClock.now - wall
    print(String(format: "zstd sink: %.1f MB in %.2f CPU s (%.2f s wall): %.1f MB/s per core", Double(bytes) / 1e6, seconds,
                 Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18, Double(bytes) / 1e6 / seconds))
case "file":
    let input = records(from: arguments[2])
    let bytes = input.reduce(0) { $0 + $1.json.readableBytes + 1 }
    let sink = try! FileSink(configuration: .init(name: "bench", directory: arguments[3]))
    let wall = ContinuousClock.now
    for batch in batches(input, size: sink.batching.maxRecords) {
        let outcome = await sink.deliver(batch)
        precondition(outcome == .delivered)
    }
    await sink.close()
    let elapsed = ContinuousClock.now - wall
    let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    print(String(format: "file sink: %.1f MB in %.2f s: %.1f MB/s", Double(bytes) / 1e6, seconds, Double(bytes) / 1e6 / seconds))
case "sink":
    let kind = arguments[2]
    let input = Array(records(from: arguments[3]).prefix(Int(arguments[4])!))
    let sink: any Sink
    do {
        sink = try makeSink(kind, tag: arguments[5], environment: ProcessInfo.processInfo.environment)
        // Connects, and creates what the sink creates itself (the NATS stream, the table).
        try await sink.healthCheck()
    } catch {
        print("\(kind) sink: cannot start: \(error)")
        exit(1)
    }
    var retries = 0
    let cpu = cpuSeconds()
    let wall = ContinuousClock.now
    for batch in batches(input, batching: sink.batching) {
        var outcome = await sink.deliver(batch)
        // A server hiccup is retried as a worker would (counted, and in the CPU time); anything
        // else ends the run: the figure would not be a delivery rate.
        while case .retry = outcome, retries < 20 {
            retries += 1
            try? await Task.sleep(for: .milliseconds(200))
            outcome = await sink.deliver(batch)
        }
        guard outcome == .delivered else {
            print("\(kind) sink: batch not delivered: \(outcome)")
            exit(1)
        }
    }
    await sink.close()
    let seconds = cpuSeconds() - cpu
    let elapsed = ContinuousClock.now - wall
    let wallSeconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    print("\(kind) sink: " + String(format: "%ld records in %.2f CPU s (%.2f s wall, %ld retries): %.0f records/s per CPU s",
                                      input.count, seconds, wallSeconds, retries, Double(input.count) / seconds))
default:
    print("usage: sink-bench generate|zstd|file|sink ...")
    exit(64)
}
