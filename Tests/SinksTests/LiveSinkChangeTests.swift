import Foundation
import NIOCore
import Testing
@testable import Sinks

/// Sinks added, replaced and removed while the pipeline runs (SIGHUP): nothing acknowledged is
/// lost, a replaced sink goes on from its cursor, a removed one stops holding the spool.
@Suite struct LiveSinkChangeTests {
    func lines(_ directory: String) -> [String] {
        ((try? String(contentsOfFile: directory + "/osqueryd.results.log", encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
    }

    @Test func addReplaceAndRemoveWhileRunning() async throws {
        let root = temporaryDirectory("live-sinks")
        let first = try FileSink(configuration: .init(name: "first", directory: root + "/first"))
        try await withPipeline([.init(sink: first)], directory: root) { pipeline in
            try await pipeline.append((0..<10).map { record($0) })
            #expect(await eventually { lines(root + "/first").count == 10 })

            // A new sink starts at the oldest data the spool holds.
            pipeline.add(.init(sink: try FileSink(configuration: .init(name: "second", directory: root + "/second"))))
            #expect(await eventually { lines(root + "/second").count == 10 })

            // Replaced under the same name (another folder): it goes on from its cursor, no repeats.
            await pipeline.remove(sink: "first", keepingCursor: true)
            pipeline.add(.init(sink: try FileSink(configuration: .init(name: "first", directory: root + "/first-new"))))
            try await pipeline.append((10..<15).map { record($0) })
            #expect(await eventually { lines(root + "/first-new").count == 5 })
            #expect(lines(root + "/first").count == 10)

            // Removed: its cursor is gone, so it no longer holds segments back.
            await pipeline.remove(sink: "second")
            #expect(pipeline.workers.map(\.sink.name) == ["first"])
            #expect(!FileManager.default.fileExists(atPath: root + "/spool/cursors/second"))
            let drained = await eventually { pipeline.spool.unsentSize == 0 }
            #expect(drained)
        }
    }
}
