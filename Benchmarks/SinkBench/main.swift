// Sink throughput benchmark (issue #3): the zstd archive sink and the file sink on the same osquery
// JSON lines that the shell script feeds to `zstd -3 -T1` and `dd conv=fdatasync`.
//
//   sink-bench generate <file> <megabytes>   writes deterministic osquery result lines
//   sink-bench zstd <file> <out-dir>          archives them (level 3), prints MB/s per CPU second
//   sink-bench file <file> <out-dir>          writes them with the file sink, prints MB/s (wall)
import Foundation
import NIOCore
import Sinks

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
default:
    print("usage: sink-bench generate|zstd|file ...")
    exit(64)
}
