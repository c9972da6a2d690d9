import Foundation
import NIOCore
@testable import Sinks

/// A fresh temporary folder.
func temporaryDirectory(_ label: String) -> String {
    let path = NSTemporaryDirectory() + "osquery-gateway-tests/\(label)-\(UUID().uuidString.prefix(8))"
    try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

/// A result record whose JSON carries `id`, so sinks' output can be checked line by line.
func record(_ id: Int, node: String = "node-1", kind: LogKind = .result, name: String = "pack_test_q", pad: Int = 0) -> LogRecord {
    let padding = pad > 0 ? ",\"pad\":\"" + String(repeating: "x", count: pad) + "\"" : ""
    return LogRecord(kind: kind, nodeID: node, hostIdentifier: "host-\(node)", secretName: "default", queryName: name,
                     platform: "linux", json: ByteBuffer(string: "{\"id\":\(id),\"node\":\"\(node)\"\(padding)}"))
}

/// Runs a command and returns its exit status and standard output.
@discardableResult
func run(_ arguments: [String], input: Data? = nil) throws -> (status: Int32, output: Data) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = arguments
    let output = Pipe()
    process.standardOutput = output
    process.standardError = FileHandle.nullDevice
    try process.run()
    let data = output.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, data)
}

/// One line of a dead-letter file: the sink, the reason, and the record's JSON exactly as written.
struct DeadLetter: Equatable {
    var sink: String
    var reason: String
    var record: String
}

/// The entries of the dead-letter file at `path`, in order (none when it does not exist).
///
/// A line is `{"sink":…,"reason":…,"rejected_at":…,"record":<record>}`; the record is cut out as
/// text (re-encoding it would hide a changed byte). The first `,"record":` is the member's: inside
/// the quoted sink and reason every `"` is escaped.
func deadLetters(_ path: String) -> [DeadLetter] {
    guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return [] }
    return text.split(separator: "\n").compactMap { line -> DeadLetter? in
        guard let marker = line.range(of: ",\"record\":"), line.hasSuffix("}"),
            let head = try? JSONSerialization.jsonObject(with: Data((String(line[..<marker.lowerBound]) + "}").utf8)) as? [String: Any]
        else { return nil }
        return DeadLetter(sink: head["sink"] as? String ?? "", reason: head["reason"] as? String ?? "",
                          record: String(line[marker.upperBound...].dropLast()))
    }
}
