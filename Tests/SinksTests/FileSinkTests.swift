import Foundation
import NIOCore
import Testing
@testable import Sinks

@Suite struct FileSinkTests {
    func record(_ kind: LogKind, _ json: String, snapshot: Bool = false, severity: Int? = nil) -> LogRecord {
        LogRecord(kind: kind, nodeID: "n", hostIdentifier: "h", isSnapshot: snapshot, severity: severity, json: ByteBuffer(string: json))
    }

    func directory() -> String {
        NSTemporaryDirectory() + "osquery-gateway-tests/sink-\(UUID().uuidString.prefix(8))"
    }

    @Test func writesOsqueryFilesystemLayout() async throws {
        let dir = directory()
        let sink = try FileSink(configuration: .init(name: "files", directory: dir))
        try await sink.write([
            record(.result, #"{"r":1}"#), record(.result, #"{"s":1}"#, snapshot: true),
            record(.status, #"{"i":0}"#, severity: 0), record(.status, #"{"w":1}"#, severity: 1),
            record(.status, #"{"e":2}"#, severity: 2), record(.status, #"{"f":3}"#, severity: 3),
            record(.distributed, #"{"d":1}"#),
        ])
        func read(_ name: String) -> String { (try? String(contentsOfFile: dir + "/" + name, encoding: .utf8)) ?? "" }
        #expect(read("osqueryd.results.log") == "{\"r\":1}\n")
        #expect(read("osqueryd.snapshots.log") == "{\"s\":1}\n")
        #expect(read("osqueryd.INFO") == "{\"i\":0}\n")
        #expect(read("osqueryd.WARNING") == "{\"w\":1}\n")
        #expect(read("osqueryd.ERROR") == "{\"e\":2}\n{\"f\":3}\n")
        #expect(read("osqueryd.distributed.log") == "{\"d\":1}\n")
        let mode = try FileManager.default.attributesOfItem(atPath: dir + "/osqueryd.results.log")[.posixPermissions] as? Int
        #expect(mode == 0o600)
        await sink.close()
    }

    @Test func concurrentWritersShareFsyncsAndNeverInterleave() async throws {
        let dir = directory()
        let sink = try FileSink(configuration: .init(name: "files", directory: dir))
        try await withThrowingTaskGroup(of: Void.self) { group in
            for writer in 0..<20 {
                group.addTask {
                    for batch in 0..<10 {
                        let records = (0..<50).map { self.record(.result, #"{"w":\#(writer),"b":\#(batch),"i":\#($0)}"#) }
                        try await sink.write(records)
                    }
                }
            }
            try await group.waitForAll()
        }
        let lines = try String(contentsOfFile: dir + "/osqueryd.results.log", encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 20 * 10 * 50)
        #expect(Set(lines).count == lines.count)
        await sink.close()
    }
}
