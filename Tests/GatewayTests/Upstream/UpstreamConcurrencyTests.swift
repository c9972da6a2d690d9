import Foundation
import Support
import Testing
@testable import Gateway

/// `upstream.max_concurrent` (issue 10 item 7, bounded concurrency): with a slow backend holding
/// every slot, further requests wait `max_concurrent_wait` and then get the outage answers, never
/// `node_invalid`, and never reach the backend.
@Suite struct UpstreamConcurrencyTests {
    @Test func requestsPastMaxConcurrentGetTheOutageAnswerAndNeverNodeInvalid() async throws {
        try await withBackend { backend in
            try await withUpstreamGateway(backend, configure: { gateway in
                gateway.configuration.upstream?.maxConcurrent = 2
                gateway.configuration.upstream?.maxConcurrentWait = .milliseconds(200)
                // Held answers still come within the timeout: the two held slots end with answers.
                gateway.configuration.upstream?.endpoint.requestTimeout = .seconds(14)
            }) { gateway in
                try await gateway.withAgent { first in
                    try await gateway.withAgent { second in
                        try await gateway.withAgent { third in
                            for agent in [first, second, third] { try await agent.enroll() }
                            #expect(try await third.config().body == mergedConfig)
                            let configs = backend.received(TestBackend.paths.config).count
                            backend.update { $0.failure = .held }

                            async let one = first.distributedRead()
                            async let two = second.distributedRead()
                            #expect(await backend.waitFor(TestBackend.paths.distributedRead, count: 2).count == 2)

                            // Both slots are held: the outage answers, and the backend is not asked.
                            #expect(try await third.distributedRead().body == #"{"queries":{}}"#)
                            #expect(try await third.config().body == mergedConfig)
                            try await gateway.withAgent { newcomer in
                                let refused = try await newcomer.enroll()
                                #expect(refused.body == #"{"error":"upstream backend unavailable; retry later"}"#)
                            }
                            try await gateway.withAgent { stranger in
                                stranger.nodeKey = "key-from-before-the-gateway"
                                let reply = try await stranger.config()
                                #expect(reply.body == #"{"error":"upstream backend unavailable; this node key cannot be checked now"}"#)
                            }
                            #expect(backend.received(TestBackend.paths.distributedRead).count == 2)
                            #expect(backend.received(TestBackend.paths.config).count == configs)
                            #expect(backend.received(TestBackend.paths.enroll).count == 3)
                            #expect(third.nodeKey != nil)

                            // The held ones end with the backend's answer, and the slots are free again.
                            backend.update { $0.failure = .none }
                            let (firstBody, secondBody) = (try await one.body, try await two.body)
                            #expect(firstBody == TestBackend.queries)
                            #expect(secondBody == TestBackend.queries)
                            #expect(try await third.distributedRead().body == TestBackend.queries)
                        }
                    }
                }
            }
        }
    }

    /// A distributed write waiting for the backend has given its ingest slot back
    /// (`limits.max_concurrent_ingest`), so a slow backend cannot starve logger batches.
    @Test func aWriteWaitingForTheBackendHoldsNoIngestSlot() async throws {
        try await withBackend { backend in
            try await withUpstreamGateway(backend, configure: { gateway in
                gateway.configuration.limits.maxConcurrentIngest = 1
                gateway.configuration.upstream?.endpoint.requestTimeout = .seconds(9)
            }) { gateway in
                try await gateway.withAgent { writer in
                    try await gateway.withAgent { logger in
                        try await writer.enroll()
                        try await logger.enroll()
                        backend.update { $0.failure = .held }
                        async let written = writer.distributedWrite(["backend_q1": [["version": "5.23.1"]]])
                        #expect(await backend.waitFor(TestBackend.paths.distributedWrite, count: 1).count == 1)

                        // The only slot is free while the write waits for the backend.
                        let items = [resultItem("pack_it_users", host: logger.hostIdentifier, columns: ["uid": "1"])]
                        let logged = try await logger.log("result", items)
                        #expect(logged.body == "{}")
                        #expect(await gateway.waitForLines("osqueryd.results.log", count: 1).count == 1)

                        // Let go, the write ends with the backend's answer, and its results are spooled.
                        backend.update { $0.failure = .none }
                        let writtenBody = try await written.body
                        #expect(writtenBody == "{}")
                        #expect(await gateway.waitForLines("osqueryd.distributed.log", count: 1).count == 1)
                    }
                }
            }
        }
    }
}
