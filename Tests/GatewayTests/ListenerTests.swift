import NIOConcurrencyHelpers
import NIOCore
import Testing
@testable import Gateway

/// The agent listener serves connections outside a task group and still drains them all on shutdown.
@Suite struct ListenerTests {
    @Test func connectionCountDrainsOnlyWhenTheLastConnectionCloses() async {
        let count = ConnectionCount()
        await count.drained()  // nothing open: returns at once
        count.opened()
        count.opened()
        let finished = NIOLockedValueBox(false)
        let waiter = Task {
            await count.drained()
            finished.withLockedValue { $0 = true }
        }
        count.closed()
        try? await Task.sleep(for: .milliseconds(100))
        #expect(finished.withLockedValue { $0 } == false, "one connection is still open")
        #expect(count.current == 1)
        count.closed()
        await waiter.value
        #expect(finished.withLockedValue { $0 })
        #expect(count.current == 0)
    }

    /// osquery 5.23 leaves its previous connection idle on every request: with many idle TLS
    /// connections open, a new agent is still served, and graceful shutdown closes every idle
    /// connection and returns (it would hang if any connection were not accounted for).
    @Test func idleConnectionsDoNotBlockServingOrShutdown() async throws {
        let gateway = try TestGateway()
        gateway.configuration.limits.idleTimeout = .seconds(60)
        try await gateway.start()
        var idle: [RawTLSClient] = []
        for _ in 0..<200 {
            let client = try await RawTLSClient(port: gateway.port, caCertificate: gateway.pki.caCertificate)
            idle.append(client)
        }
        try await gateway.withAgent { agent in
            let enrolled = try await agent.enroll()
            let key = try #require(agent.nodeKey)
            #expect(enrolled.body == "{\"node_key\":\"\(key)\",\"node_invalid\":false}")
        }
        #expect(idle.allSatisfy { $0.channel.isActive }, "idle connections stay open while the gateway runs")
        try await gateway.stop()
        var open = 0
        for client in idle where await !client.waitForClose(timeout: .seconds(5)) { open += 1 }
        #expect(open == 0, "shutdown closes every idle connection")
    }
}
