import Foundation
import NIOConcurrencyHelpers
import Testing
@testable import Gateway

/// Every answer the agent listener sends has a JSON body, whatever layer produced it: osquery reads
/// an empty body as success and would delete the batch (the probe found bodyless 400s below the routes).
@Suite struct ProtocolErrorBodyTests {
    static let host = "Host: localhost\r\n"

    @Test(arguments: [
        ("bad request line", "GARBAGE\r\n\r\n", "unsupported HTTP method"),
        ("bad version", "POST /logger HTTP/7.x\r\n\(host)\r\n", ""),
        ("unknown method", "BREW /logger HTTP/1.1\r\n\(host)Content-Length: 2\r\n\r\n{}", "unsupported HTTP method"),
        ("length and chunked", "POST /logger HTTP/1.1\r\n\(host)Content-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
         ""),
        ("header overflow", "POST /logger HTTP/1.1\r\n\(host)X-Big: \(String(repeating: "a", count: 100_000))\r\nContent-Length: 2\r\n\r\n{}",
         "request headers are too large"),
        ("secret with a space in the URL", "POST /logger?enroll_secret=has space HTTP/1.1\r\n\(host)Content-Length: 2\r\n\r\n{}",
         "malformed HTTP request"),
    ])
    func malformedRequestGetsAJSONErrorBody(name: String, request: String, reason: String) async throws {
        try await withGateway { gateway in
            let client = try await RawTLSClient(port: gateway.port, caCertificate: gateway.pki.caCertificate)
            try await client.send(request)
            let body = try await client.responseBody()
            if reason.isEmpty {
                // Which parser error names the problem varies with llhttp; the body is what matters.
                #expect(body.hasPrefix(#"{"error":"bad request: "#) && body.hasSuffix(#""}"#), "\(name): \(client.received.prefix(300))")
            } else {
                #expect(body == #"{"error":"bad request: \#(reason)"}"#, "\(name): \(client.received.prefix(300))")
            }
            #expect(client.received.hasPrefix("HTTP/1.1 400"), "\(name)")
            #expect(await client.waitForClose(timeout: .seconds(5)), "\(name): the connection is closed after a framing error")
            await client.close()
        }
    }

    /// A bad chunk size in the middle of a body gets 400 and a body (it was a 500 with an error id).
    @Test func malformedChunkSizeMidBodyGets400WithABody() async throws {
        try await withGateway { gateway in
            try await gateway.withAgent { agent in
                try await agent.enroll()
                let client = try await RawTLSClient(port: gateway.port, caCertificate: gateway.pki.caCertificate)
                try await client.send("POST /logger HTTP/1.1\r\n\(Self.host)Authorization: NodeKey \(agent.nodeKey!)\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n")
                let body = try await client.responseBody()
                #expect(body == #"{"error":"bad request: malformed chunk size"}"#, "\(client.received.prefix(300))")
                #expect(client.received.hasPrefix("HTTP/1.1 400"))
                await client.close()
            }
        }
    }

    /// HEAD and CONNECT are not osquery methods: a JSON 404 for HEAD's head, and CONNECT is closed at once.
    @Test func headAndConnectAreAnsweredAndClosed() async throws {
        try await withGateway { gateway in
            let head = try await RawTLSClient(port: gateway.port, caCertificate: gateway.pki.caCertificate)
            try await head.send("HEAD /logger HTTP/1.1\r\n\(Self.host)\r\n")
            for _ in 0..<100 where !head.received.contains("\r\n\r\n") { try await Task.sleep(for: .milliseconds(20)) }
            #expect(head.received.hasPrefix("HTTP/1.1 404"))
            #expect(head.received.lowercased().contains("content-type: application/json"))
            await head.close()

            let connect = try await RawTLSClient(port: gateway.port, caCertificate: gateway.pki.caCertificate)
            try await connect.send("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n")
            #expect(await connect.waitForClose(timeout: .seconds(5)), "CONNECT must not hold the connection until the idle timeout")
            #expect(connect.received.hasPrefix("HTTP/1.1 404"))
            await connect.close()
        }
    }
}

/// A client that goes away mid-body is normal traffic: no error-level line with an error id.
@Suite struct ClientDisconnectTests {
    @Test func aClientLeavingMidBodyIsNotAnError() async throws {
        let logs = LogCapture()
        let gateway = try TestGateway()
        try await gateway.start(logs: logs)
        let agent = try gateway.agent()
        do {
            try await agent.enroll()
            let client = try await RawTLSClient(port: gateway.port, caCertificate: gateway.pki.caCertificate)
            try await client.send(
                "POST /logger HTTP/1.1\r\nHost: localhost\r\nAuthorization: NodeKey \(agent.nodeKey ?? "")\r\nContent-Length: 5000\r\n\r\n{\"log_type\":")
            try await Task.sleep(for: .milliseconds(200))
            await client.close()
            try await Task.sleep(for: .milliseconds(300))
        } catch {
            Issue.record("\(error)")
        }
        try await agent.shutdown()
        try await gateway.stop()
        let lines = logs.lines.withLockedValue { $0 }
        #expect(!lines.contains { $0.contains("request failed") }, "\(lines.filter { $0.contains("request failed") })")
    }
}
