import Foundation
import Support
@testable import Gateway

/// Polls `probe` every 50 ms until it gives a value or `timeout` passes; nil then.
func firstValue<T>(within timeout: Duration = .seconds(5), _ probe: () async throws -> T?) async rethrows -> T? {
    let deadline = ContinuousClock.now + timeout
    while true {
        if let value = try await probe() { return value }
        if ContinuousClock.now >= deadline { return nil }
        try? await Task.sleep(for: .milliseconds(50))
    }
}

extension LiveQueryGateway {
    /// A live-query gateway (admin API on) whose node store is the PostgreSQL database `endpoint`.
    static func sharing(_ endpoint: PostgresEndpoint, reloadEvery: Duration = .seconds(60)) throws -> LiveQueryGateway {
        let live = try LiveQueryGateway()
        live.gateway.configuration.nodeStore = .postgres(.init(endpoint: endpoint, control: .init(reloadInterval: reloadEvery)))
        return live
    }

    var control: PostgresControlChannel? { gateway.controlChannel }

    /// Waits until the invalidation channel listens and its first reset ran (it forgets every
    /// cached key, so a test warms caches only after it).
    func waitUntilListening(resets: Int = 1) async -> Bool {
        await firstValue(within: .seconds(15)) { () async -> Bool? in
            guard let control, control.isListening, control.resets >= resets else { return nil }
            return true
        } ?? false
    }

    /// An agent for this gateway that is already enrolled elsewhere: same host, same key.
    func agent(like other: AgentEmulator) throws -> AgentEmulator {
        let agent = try self.agent(other.hostIdentifier)
        agent.nodeKey = other.nodeKey
        agent.instanceID = other.instanceID
        return agent
    }
}

/// Runs `body` with two started gateways in this process that share one new PostgreSQL database
/// (as two gateways behind a balancer do), both listening on the invalidation channel, and stops
/// them afterwards.
func withTwoGateways(reloadEvery: Duration = .seconds(60), _ body: (LiveQueryGateway, LiveQueryGateway) async throws -> Void) async throws {
    try await StoreKind.withDatabase { endpoint in
        let a = try LiveQueryGateway.sharing(endpoint, reloadEvery: reloadEvery)
        let b = try LiveQueryGateway.sharing(endpoint, reloadEvery: reloadEvery)
        func stopBoth() async {
            for live in [a, b] {
                try? await live.gateway.stop()
                try? await live.shutdown()
            }
        }
        do {
            try await a.gateway.start()
            try await b.gateway.start()
            let listening = await a.waitUntilListening()
            let listeningToo = await b.waitUntilListening()
            guard listening, listeningToo else { throw SharedStoreSetupFailure() }
            try await body(a, b)
        } catch {
            await stopBoth()
            throw error
        }
        await stopBoth()
    }
}

struct SharedStoreSetupFailure: Error, CustomStringConvertible {
    var description: String { "the gateways' invalidation channels did not start listening within 15 s" }
}
