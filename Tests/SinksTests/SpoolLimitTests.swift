import Foundation
import NIOCore
import Testing
@testable import Sinks

/// `spool.max_size` limits what some sink has yet to take, not bytes already delivered (the probe
/// found `max_size == segment_size` refusing every batch for ever, across restarts).
@Suite struct SpoolLimitTests {
    @Test func maxSizeEqualToSegmentSizeKeepsAcceptingWhileSinksKeepUp() async throws {
        let directory = temporaryDirectory("spool-limit")
        let size = 64 << 10
        var spool = try Spool(configuration: .init(directory: directory, maxSize: size, segmentSize: size, commitWindow: .zero), sinks: ["a"])
        var next = 0
        // Six times the limit goes through as long as the sink reads and commits behind it.
        for round in 0..<2 {
            for _ in 0..<(3 * size / 1_100) {
                try await spool.append([record(next, pad: 1_000)])
                next += 1
                let read = try spool.read(from: spool.cursor(of: "a"), maxRecords: .max, maxBytes: .max)
                try spool.commit(sink: "a", to: read.next)
            }
            #expect(spool.unsentSize == 0)
            if round == 0 {
                // And across a restart.
                spool.close()
                spool = try Spool(configuration: .init(directory: directory, maxSize: size, segmentSize: size, commitWindow: .zero), sinks: ["a"])
            }
        }
        #expect(spool.segmentCount <= 2)
        spool.close()
    }

    @Test func undeliveredDataStillFillsTheSpool() async throws {
        let size = 64 << 10
        let spool = try Spool(configuration: .init(directory: temporaryDirectory("spool-limit"), maxSize: size, segmentSize: size, commitWindow: .zero), sinks: ["a"])
        var refused: (any Error)?
        for id in 0..<200 where refused == nil {
            do { try await spool.append([record(id, pad: 1_000)]) } catch { refused = error }
        }
        #expect(refused is SinkError)
        #expect("\(refused!)".contains("not yet delivered"))
        #expect(spool.unsentSize <= size)
        spool.close()
    }
}
