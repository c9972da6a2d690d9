import Foundation
import Testing

/// The committed fuzz corpus (Fuzz/Corpus, grown by `make fuzz`) replayed through the same
/// decoders with the uninstrumented build: every input that once found a new path stays a test.
@Suite struct FuzzCorpusTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()
    static let replayer = root.appendingPathComponent(".build/debug/gateway-fuzz").path

    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: replayer), "needs the built gateway-fuzz"),
          arguments: ["logger", "distributed_write", "enroll", "node_key", "gzip", "json", "spool_frame"])
    func corpusReplaysWithoutACrash(target: String) async throws {
        let child = Process()
        child.executableURL = URL(fileURLWithPath: Self.replayer)
        child.arguments = [target, Self.root.appendingPathComponent("Fuzz/Corpus/\(target)").path]
        child.standardOutput = FileHandle.nullDevice
        child.standardError = FileHandle.nullDevice
        try child.run()
        while child.isRunning { try await Task.sleep(for: .milliseconds(20)) }
        #expect(child.terminationReason == .exit && child.terminationStatus == 0, "\(target) corpus crashed the decoder")
    }
}
