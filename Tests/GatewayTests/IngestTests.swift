import Foundation
import HTTPTypes
import Logging
import NIOCore
import Sinks
import Testing
@testable import Gateway

/// The ingest step alone, over a real spool: what a decoded body becomes in the pipeline, and what
/// the agent hears when the spool refuses it.
@Suite struct IngestTests {
    /// platform_type 9 is POSIX | LINUX: records are routed as `linux`.
    static let node = NodeRecord(
        id: "node-1", keyHash: [1], hostKey: nil, hostIdentifier: "host-1", platformType: "9", hostDetails: "{}",
        secretName: "default", certificateFingerprint: nil, enrolledAt: Date(timeIntervalSince1970: 0), lastSeen: nil)
    static let receivedAt = Date(timeIntervalSince1970: 1_700_000_000)
    static let logger: Logger = {
        var logger = Logger(label: "ingest")
        logger.logLevel = .critical
        return logger
    }()

    @Test func loggerBodyBecomesOneRecordPerItem() async throws {
        try await withIngest { ingest, stored in
            let results = ByteBuffer(string: #"{"node_key":"k","log_type":"result","data":[{"name":"pack_a","action":"snapshot","snapshot":[]},{"name":"b", "columns":{"x":"1 2"}}]}"#)
            try await ingest.append(try LoggerRequest(body: results), from: Self.node, receivedAt: Self.receivedAt, logger: Self.logger)
            let records = try stored()
            #expect(records.map(\.kind) == [LogKind.result, .result])
            #expect(records.map(\.queryName) == ["pack_a", "b"])
            #expect(records.map(\.platform) == ["linux", "linux"])
            #expect(records.map(\.isSnapshot) == [true, false])
            // The first item is a slice of the body; the second held whitespace and is compacted.
            #expect(records.map { String(buffer: $0.json) } == [
                #"{"name":"pack_a","action":"snapshot","snapshot":[]}"#, #"{"name":"b","columns":{"x":"1 2"}}"#,
            ])
            #expect(records.allSatisfy {
                $0.nodeID == "node-1" && $0.hostIdentifier == "host-1" && $0.secretName == "default" && $0.receivedAt == Self.receivedAt
            })

            let status = ByteBuffer(string: #"{"log_type":"status","data":[{"severity":2,"message":"m"}]}"#)
            try await ingest.append(try LoggerRequest(body: status), from: Self.node, receivedAt: Self.receivedAt, logger: Self.logger)
            let last = try #require(try stored().last)
            #expect(last.kind == .status)
            #expect(last.severity == 2)
            #expect(last.queryName == nil)
            #expect(String(buffer: last.json) == #"{"severity":2,"message":"m"}"#)
        }
    }

    @Test func distributedWriteBecomesOneRecordPerQueryID() async throws {
        try await withIngest { ingest, stored in
            let body = ByteBuffer(string: #"{"node_key":"k","queries":{"q1":[{"a":"1"}],"q2":[]},"statuses":{"q1":0,"q2":1},"messages":{"q2":"no such table: x"},"stats":{"q1":{"wall_time_ms":3}}}"#)
            try await ingest.append(try DistributedWriteRequest(body: body), from: Self.node, receivedAt: Self.receivedAt, logger: Self.logger)
            let records = try stored()
            #expect(records.map(\.kind) == [LogKind.distributed, .distributed])
            #expect(records.map(\.queryName) == ["q1", "q2"])
            #expect(records.map(\.platform) == ["linux", "linux"])
            #expect(records.map { String(buffer: $0.json) } == [
                #"{"name":"q1","hostIdentifier":"host-1","unixTime":1700000000,"status":0,"message":"","stats":{"wall_time_ms":3},"rows":[{"a":"1"}]}"#,
                #"{"name":"q2","hostIdentifier":"host-1","unixTime":1700000000,"status":1,"message":"no such table: x","stats":{},"rows":[]}"#,
            ])
            #expect(records.allSatisfy { $0.nodeID == "node-1" && $0.secretName == "default" && $0.receivedAt == Self.receivedAt })
        }
    }

    @Test func aBatchTheSpoolRefusesIsTheRetryLaterAnswer() async throws {
        try await withIngest(maxSize: 256) { ingest, stored in
            let item = #"{"name":"q","pad":""# + String(repeating: "p", count: 1_000) + #""}"#
            let batch = try LoggerRequest(body: ByteBuffer(string: #"{"log_type":"result","data":["# + item + "]}"))
            do {
                try await ingest.append(batch, from: Self.node, receivedAt: Self.receivedAt, logger: Self.logger)
                Issue.record("a batch over spool.max_size was stored")
            } catch let error as OsqueryError {
                #expect(error.status == .serviceUnavailable)
                #expect(error.body == #"{"error":"logs cannot be stored right now; keep them and retry"}"#)
                #expect(!error.nodeInvalid)
            }
            #expect(try stored().isEmpty)
        }
    }

    @Test func pastTheHighWaterMarkLoggerBatchesAreRefusedAndDistributedResultsStillTaken() async throws {
        try await withIngest { ingest, stored in
            // Each batch different: the pipeline stores an exact resend only once.
            func batch(_ n: Int) throws -> LoggerRequest {
                let item = #"{"name":"q","n":\#(n),"pad":""# + String(repeating: "p", count: 1_000) + #""}"#
                return try LoggerRequest(body: ByteBuffer(string: #"{"log_type":"result","data":["# + item + "]}"))
            }
            try await ingest.append(try batch(0), from: Self.node, receivedAt: Self.receivedAt, logger: Self.logger)
            // The mark sits halfway through the fourth batch's frame.
            let frame = ingest.pipeline.spool.unsentSize
            let admission = IngestAdmission(configuration: .init(highWater: frame * 7 / 2, maxConcurrent: 8), spool: ingest.pipeline.spool)
            let shaped = Ingest(pipeline: ingest.pipeline, admission: admission)
            var accepted = 0
            do {
                for n in 1...10 {
                    try await shaped.admitted(.logger) {
                        try await shaped.append(try batch(n), from: Self.node, receivedAt: Self.receivedAt, logger: Self.logger)
                    }
                    accepted += 1
                }
                Issue.record("ten batches passed a high-water mark of three and a half")
            } catch let error as OsqueryError {
                #expect(error.status == .serviceUnavailable)
                #expect(error.body == #"{"error":"the gateway's spool is past its high-water mark while sinks catch up; keep the logs and retry"}"#)
                #expect(!error.nodeInvalid)
            }
            #expect(accepted == 3)
            #expect(try stored().count == 4)
            let results = try DistributedWriteRequest(body: ByteBuffer(string: #"{"queries":{"q1":[{"a":"1"}]},"statuses":{"q1":0}}"#))
            try await shaped.admitted(.distributedWrite) {
                try await shaped.append(results, from: Self.node, receivedAt: Self.receivedAt, logger: Self.logger)
            }
            #expect(try stored().count == 5)
        }
    }

    @Test func pastMaxConcurrentRequestsTheBusyAnswerComesBeforeAnythingIsRead() async throws {
        try await withIngest { ingest, _ in
            let admission = IngestAdmission(configuration: .init(highWater: .max, maxConcurrent: 1), spool: ingest.pipeline.spool)
            let shaped = Ingest(pipeline: ingest.pipeline, admission: admission)
            let (held, release) = AsyncStream.makeStream(of: Void.self)
            let (entered, enter) = AsyncStream.makeStream(of: Void.self)
            let first = Task {
                try await shaped.admitted(.logger) {
                    enter.yield()
                    for await _ in held { break }
                }
            }
            for await _ in entered { break }
            var ranSecond = false
            do {
                try await shaped.admitted(.distributedWrite) { ranSecond = true }
                Issue.record("a second request ran while the only slot was held")
            } catch let error as OsqueryError {
                #expect(error.body == #"{"error":"the gateway is saturated right now; keep the logs and retry"}"#)
                #expect(error.status == .serviceUnavailable)
            }
            #expect(!ranSecond)
            release.yield()
            try await first.value
            #expect(admission.concurrent == 0)
            try await shaped.admitted(.logger) { ranSecond = true }
            #expect(ranSecond)
        }
    }

    @Test func aBodyTheDecoderRefusesIsTheOne400Body() throws {
        do throws(OsqueryBodyError) {
            _ = try LoggerRequest(body: ByteBuffer(string: #"{"log_type":"result","data":{}}"#))
            Issue.record("a logger body whose data is an object was decoded")
        } catch {
            let answer = OsqueryErrorMiddleware<GatewayRequestContext>.map(error)
            #expect(answer.status == .badRequest)
            #expect(answer.body == #"{"error":"invalid logger body: data must be an array (at byte 28)"}"#)
        }
    }

    /// An ingest step over a fresh spool with one reader, `test`, that never reads; `body` gets the
    /// step and a way to see every record the spool holds.
    private func withIngest(
        maxSize: Int = 1 << 30, _ body: (Ingest, () throws -> [LogRecord]) async throws -> Void
    ) async throws {
        let directory = makeTemporaryDirectory("ingest")
        let spool = try Spool(configuration: .init(directory: directory + "/spool", maxSize: maxSize, commitWindow: .zero), sinks: ["test"])
        let pipeline = LogPipeline(spool: spool, routes: [], deadLetterDirectory: directory + "/deadletter", logger: Self.logger)
        let stored: () throws -> [LogRecord] = {
            try spool.read(from: spool.cursor(of: "test"), maxRecords: .max, maxBytes: .max).records
        }
        do {
            try await body(Ingest(pipeline: pipeline), stored)
        } catch {
            await pipeline.close()
            throw error
        }
        await pipeline.close()
    }
}
