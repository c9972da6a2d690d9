import Foundation
import NIOCore
import Testing
@testable import Gateway

/// The real `osquery-gateway` process killed with SIGKILL while agents log steadily: after a restart,
/// every line whose batch got a success body reaches every sink.
/// The gateway binary this build made.
let gatewayBinary = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent(".build/debug/osquery-gateway").path

/// The real gateway as a child process.
final class GatewayProcess: @unchecked Sendable {
    let process = Process()

    init(config: String) throws {
        process.executableURL = URL(fileURLWithPath: gatewayBinary)
        process.arguments = ["serve", "--config", config]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
    }

    func kill(_ signal: Int32) {
        Glibc.kill(process.processIdentifier, signal)
        process.waitUntilExit()
    }
}

@Suite struct CrashTests {
    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: gatewayBinary), "needs the built binary"))
    func acknowledgedLinesSurviveSIGKILL() async throws {
        let directory = makeTemporaryDirectory("crash")
        let pki = try TestPKI(directory: directory + "/tls")
        let secret = "crash-secret"
        try Data(secret.utf8).write(to: URL(fileURLWithPath: directory + "/secret.txt"))
        try Data(#"{"options":{}}"#.utf8).write(to: URL(fileURLWithPath: directory + "/osquery.conf"))
        let port = Int.random(in: 20_000..<40_000)
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
              - { name: files, type: file, directory: logs }
              - { name: archive, type: zstd, directory: archive }
            """.utf8).write(to: URL(fileURLWithPath: config))

        let first = try GatewayProcess(config: config)
        let agents = try (0..<3).map { _ in
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

        // Log steadily from three agents; SIGKILL the gateway in the middle of it.
        let acknowledged = try await logResults(from: agents, ids: { "a\($0)-b\($1)-\($2)" }, batchSize: 20, for: .milliseconds(1500)) {
            try await Task.sleep(for: .milliseconds(700))
            first.kill(SIGKILL)
        }
        #expect(acknowledged.count > 100)

        let gateway = try GatewayProcess(config: config)
        func ids(in text: String) -> Set<String> {
            Set(text.split(separator: "\n").compactMap { line in
                line.range(of: #"a\d-b\d+-\d+"#, options: .regularExpression).map { String(line[$0]) }
            })
        }
        let resultsFile = directory + "/data/logs/osqueryd.results.log"
        let expected = Set(acknowledged)
        var inFiles = Set<String>()
        for _ in 0..<300 where !expected.isSubset(of: inFiles) {
            try await Task.sleep(for: .milliseconds(100))
            inFiles = ids(in: String(decoding: FileManager.default.contents(atPath: resultsFile) ?? Data(), as: UTF8.self))
        }
        #expect(expected.subtracting(inFiles).isEmpty, "file sink lost \(expected.subtracting(inFiles).count) acknowledged lines")
        // Let the archive catch up, then stop gracefully so the archive is completed, and check it with zstd.
        try await Task.sleep(for: .milliseconds(500))
        gateway.kill(SIGTERM)
        #expect(gateway.process.terminationStatus == 0)
        var archived = Set<String>()
        let archive = directory + "/data/archive"
        for case let file as String in FileManager.default.enumerator(atPath: archive)! where file.hasSuffix(".jsonl.zst") {
            let zstd = Process()
            zstd.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            zstd.arguments = ["zstd", "-dc", archive + "/" + file]
            let pipe = Pipe()
            zstd.standardOutput = pipe
            try zstd.run()
            let output = pipe.fileHandleForReading.readDataToEndOfFile()
            zstd.waitUntilExit()
            #expect(zstd.terminationStatus == 0)
            archived.formUnion(ids(in: String(decoding: output, as: UTF8.self)))
        }
        #expect(expected.subtracting(archived).isEmpty, "archive lost \(expected.subtracting(archived).count) acknowledged lines")
        for agent in agents { try await agent.shutdown() }
    }
}

/// `agents` log result batches of `batchSize` lines back to back for `duration`, while `meanwhile`
/// runs (kills the gateway, say); the ids of every line acknowledged with `{}`, which must all
/// reach the sinks whatever happened meanwhile. `ids(agent, batch, line)` names each line.
func logResults(
    from agents: [AgentEmulator], ids: @escaping @Sendable (Int, Int, Int) -> String, batchSize: Int, for duration: Duration,
    meanwhile: @escaping @Sendable () async throws -> Void
) async throws -> [String] {
    try await withThrowingTaskGroup(of: [String].self) { group in
        for (a, agent) in agents.enumerated() {
            group.addTask {
                var acked: [String] = []
                let deadline = ContinuousClock.now + duration
                var batch = 0
                while ContinuousClock.now < deadline {
                    let lines = (0..<batchSize).map { ids(a, batch, $0) }
                    let items = lines.map { resultItem("pack_crash_q", host: agent.hostIdentifier, columns: ["id": $0]) }
                    if let reply = try? await agent.log("result", items), reply.body == "{}" { acked += lines }
                    batch += 1
                }
                return acked
            }
        }
        group.addTask {
            try await meanwhile()
            return []
        }
        var all: [String] = []
        for try await lines in group { all += lines }
        return all
    }
}
