import CompressNIO
import Foundation
import NIOCore
import Testing
@testable import Gateway

/// Bad input gets a clear error body, changes nothing, and never stops the server.
@Suite struct BadInputTests {
    @Test func wrongTypesAreBadRequests() async throws {
        try await withGateway { gateway in
            try await gateway.withAgent { agent in
                try await agent.enroll()
                let cases: [(String, String, String)] = [
                    ("/logger", #"{"node_key":42,"log_type":"result","data":[]}"#, #"{"error":"invalid logger body: node_key must be a string (at byte 12)"}"#),
                    ("/logger", #"{"log_type":"result","data":{}}"#, #"{"error":"invalid logger body: data must be an array (at byte 28)"}"#),
                    ("/logger", #"{"log_type":"result","data":["line"]}"#, #"{"error":"invalid logger body: data items must be objects (at byte 29)"}"#),
                    ("/logger", #"["not","an","object"]"#, #"{"error":"invalid logger body: expected '{' (at byte 0)"}"#),
                    ("/enroll", #"{"enroll_secret":true}"#, #"{"error":"invalid enroll body: enroll_secret must be a string (at byte 17)"}"#),
                    ("/config", #"{"node_key":"a"} trailing"#, #"{"error":"invalid request body: unexpected data after the JSON value (at byte 17)"}"#),
                    ("/distributed/write", #"{"queries":{"q":"rows"}}"#, #"{"error":"invalid distributed write body: rows of q has the wrong type (at byte 16)"}"#),
                ]
                for (path, body, expected) in cases {
                    let reply = try await agent.post(path, body: ByteBuffer(string: body))
                    #expect(reply.status == 400, "\(path) \(body)")
                    #expect(reply.body == expected)
                }
                #expect(gateway.logLines("osqueryd.results.log").isEmpty)
            }
        }
    }

    @Test func deeplyNestedJSONIsRefusedNotCrashed() async throws {
        try await withGateway { gateway in
            try await gateway.withAgent { agent in
                try await agent.enroll()
                let nested = String(repeating: "[", count: 100_000)
                let reply = try await agent.post("/logger", body: ByteBuffer(string: #"{"log_type":"result","data":[{"a":"# + nested + "}]}"))
                #expect(reply.status == 400)
                #expect(reply.body.contains("nested too deeply"))
                do {
                    let reply = try await agent.distributedRead()
                    #expect(reply.outcome == .accepted)
                }
            }
        }
    }

    @Test func gzipBombStopsAtTheInflatedLimit() async throws {
        try await withGateway { gateway in
            try await gateway.withAgent { agent in
                try await agent.enroll()
                // 64 MiB of spaces inside a valid prefix compresses to ~64 KiB, under the 1 MiB wire limit.
                var plain = ByteBuffer(string: #"{"log_type":"result","data":[], "pad":""#)
                plain.writeRepeatingByte(UInt8(ascii: " "), count: 64 << 20)
                plain.writeString(#""}"#)
                let reply = try await agent.post("/logger", body: plain, gzip: true)
                #expect(reply.status == 413)
                #expect(reply.body == #"{"error":"gzip body inflates past 4194304 bytes"}"#)
            }
        }
    }

    @Test func truncatedOrEmptyGzipIsRefused() async throws {
        try await withGateway { gateway in
            try await gateway.withAgent { agent in
                try await agent.enroll()
                var body = ByteBuffer(string: #"{"log_type":"status","data":[{"severity":0,"message":"m"}]}"#)
                let compressed = try body.compress(with: .gzip())
                let truncated = compressed.getSlice(at: compressed.readerIndex, length: compressed.readableBytes / 2)!
                let reply = try await agent.post("/logger", body: truncated, extraHeaders: [("Content-Encoding", "gzip")])
                #expect(reply.status == 400)
                #expect(reply.outcome == .failed)
                let empty = try await agent.post("/logger", body: ByteBuffer(), extraHeaders: [("Content-Encoding", "gzip")])
                #expect(empty.status == 400)
                #expect(empty.body == #"{"error":"empty body with Content-Encoding: gzip"}"#)
                let brotli = try await agent.post("/logger", body: ByteBuffer(string: "x"), extraHeaders: [("Content-Encoding", "br")])
                #expect(brotli.status == 415)
                #expect(brotli.outcome == .failed)
                #expect(gateway.logLines("osqueryd.INFO").isEmpty)
            }
        }
    }

    @Test func invalidUTF8InsideStringsIsKeptAsSent() async throws {
        try await withGateway { gateway in
            try await gateway.withAgent { agent in
                try await agent.enroll()
                var body = ByteBuffer(string: #"{"node_key":"\#(agent.nodeKey!)","log_type":"result","data":[{"name":"q","columns":{"path":"/tmp/"#)
                body.writeBytes([0xFF, 0xFE, 0xC3])  // not UTF-8, as osquery can send from table data
                body.writeString(#""},"action":"added"}]}"#)
                let reply = try await agent.post("/logger", body: body)
                #expect(reply.body == "{}")
                _ = await gateway.waitForLines("osqueryd.results.log", count: 1)
                let data = try Data(contentsOf: URL(fileURLWithPath: gateway.logsDirectory + "/osqueryd.results.log"))
                #expect(data.contains(Data([0x2F, 0xFF, 0xFE, 0xC3, 0x22])))
            }
        }
    }

    @Test func whitespaceInsideItemsNeverSplitsALine() async throws {
        try await withGateway { gateway in
            try await gateway.withAgent { agent in
                try await agent.enroll()
                let body = "{\"log_type\":\"result\",\"data\":[\n  {\"name\": \"q\",\n \"columns\": {\"a\": \"x y\"}}\n]}"
                let reply = try await agent.post("/logger", body: ByteBuffer(string: body))
                #expect(reply.body == "{}")
                #expect(await gateway.waitForLines("osqueryd.results.log", count: 1) == [#"{"name":"q","columns":{"a":"x y"}}"#])
            }
        }
    }

    @Test func stalledClientsAreDisconnectedAndTheServerKeepsServing() async throws {
        // A short idle timeout, so the 10 s waits below tell a closed connection from a held one.
        try await withGateway(configure: { $0.configuration.limits.idleTimeout = .seconds(3) }) { gateway in
            // Half a request, then silence.
            let half = try await RawTLSClient(port: gateway.port, caCertificate: gateway.pki.caCertificate)
            try await half.send("POST /logger HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n{\"node_key\":")
            // A TCP connection that never starts TLS.
            let silent = try await RawTLSClient(port: gateway.port, caCertificate: gateway.pki.caCertificate, tls: false)
            #expect(await half.waitForClose(timeout: .seconds(10)))
            #expect(await silent.waitForClose(timeout: .seconds(10)))
            try await gateway.withAgent { agent in
                do {
                    let reply = try await agent.enroll()
                    #expect(reply.status == 200)
                }
            }
        }
    }

    @Test func secretWithHashArrivesWholeFromARawTarget() async throws {
        try await withGateway(configure: { gateway in
            try Data("s#cr&t".utf8).write(to: URL(fileURLWithPath: gateway.directory + "/secret.txt"))
        }) { gateway in
            let client = try await RawTLSClient(port: gateway.port, caCertificate: gateway.pki.caCertificate)
            let body = #"{"enroll_secret":"","host_identifier":"h","platform_type":"9","host_details":{}}"#
            try await client.send("POST /enroll?enroll_secret=s#cr&t HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)")
            let reply = try await client.responseBody()
            #expect(reply.hasPrefix(#"{"node_key":""#))
            await client.close()
        }
    }
}
