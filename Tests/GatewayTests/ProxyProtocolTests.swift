import Foundation
import HTTPTypes
import NIOConcurrencyHelpers
import NIOCore
import NIOEmbedded
import Testing
@testable import Gateway

/// `listen.proxy_protocol`: the PROXY protocol header (v1 and v2) a TCP balancer puts before the
/// agent's bytes gives the gateway the agent's own address.
@Suite struct ProxyHeaderTests {
    /// A header as a short text: `complete 203.0.113.7:51234 in 44`, `complete - in 16`, `incomplete`, `invalid: ...`.
    func read(_ bytes: [UInt8]) -> String {
        switch ProxyHeader.parse(bytes) {
        case .incomplete: return "incomplete"
        case .invalid(let reason): return "invalid: \(reason)"
        case .complete(let source, let length):
            return "complete \(source.map { "\($0.ipAddress ?? "?"):\($0.port ?? 0)" } ?? "-") in \(length)"
        }
    }

    func text(_ string: String) -> [UInt8] { Array(string.utf8) }

    static let signature: [UInt8] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A]
    /// 203.0.113.7:51234 -> 10.0.0.5:8443 over TCP/IPv4, as HAProxy's `send-proxy-v2` sends it.
    static let v2IPv4: [UInt8] = signature + [0x21, 0x11, 0x00, 0x0C, 203, 0, 113, 7, 10, 0, 0, 5, 0xC8, 0x22, 0x20, 0xFB]
    /// [2001:db8::7]:51234 -> [2001:db8::1]:8443 over TCP/IPv6.
    static let v6Source: [UInt8] = [0x20, 0x01, 0x0D, 0xB8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7]
    static let v6Destination: [UInt8] = [0x20, 0x01, 0x0D, 0xB8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]
    static let v2IPv6: [UInt8] = signature + [0x21, 0x21, 0x00, 0x24] + v6Source + v6Destination + [0xC8, 0x22, 0x20, 0xFB]

    @Test func v1NamesTheSourceOfTCP4AndTCP6() {
        let line = "PROXY TCP4 203.0.113.7 10.0.0.5 51234 8443\r\n"
        #expect(read(text(line + "\u{16}\u{03}\u{01}")) == "complete 203.0.113.7:51234 in \(line.utf8.count)")
        let six = "PROXY TCP6 2001:db8::7 2001:db8::1 51234 8443\r\n"
        #expect(read(text(six)) == "complete 2001:db8::7:51234 in \(six.utf8.count)")
        #expect(read(text("PROXY UNKNOWN\r\n")) == "complete - in 15")
        #expect(read(text("PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n")) == "complete - in 35")
    }

    @Test func v1WaitsForItsLineAndRefusesWhatIsNotOne() {
        #expect(read(text("PRO")) == "incomplete")
        #expect(read(text("PROXY TCP4 203.0.113.7 10.0")) == "incomplete")
        #expect(read(text("PROXY TCP4 " + String(repeating: "9", count: 100))) == "invalid: the v1 header is longer than 107 bytes")
        #expect(read(text("PROXY TCP4 2001:db8::7 10.0.0.5 51234 8443\r\n")) == "invalid: the v1 header's source address is not TCP4")
        #expect(read(text("PROXY TCP4 203.0.113.7 10.0.0.5 port 8443\r\n"))
            == "invalid: the v1 header's addresses do not read: TCP4 203.0.113.7 10.0.0.5 port 8443")
        #expect(read(text("PROXY UDP4 203.0.113.7 10.0.0.5 1 2\r\n")) == "invalid: the v1 header's protocol is UDP4, not TCP4, TCP6 or UNKNOWN")
        // A client that went around the balancer starts with its TLS ClientHello.
        #expect(read([0x16, 0x03, 0x01, 0x02, 0x00]) == "invalid: the connection does not start with a PROXY protocol header")
        #expect(read(text("GET / HTTP/1.1\r\n")) == "invalid: the connection does not start with a PROXY protocol header")
    }

    @Test func v2NamesTheSourceAndSkipsTLVs() {
        #expect(read(Self.v2IPv4 + [0x16, 0x03]) == "complete 203.0.113.7:51234 in 28")
        // A NOOP TLV of 4 bytes after the addresses: length 12 + 7.
        let withTLV = Self.signature + [0x21, 0x11, 0x00, 0x13, 203, 0, 113, 7, 10, 0, 0, 5, 0xC8, 0x22, 0x20, 0xFB, 0x04, 0x00, 0x04, 1, 2, 3, 4]
        #expect(read(withTLV) == "complete 203.0.113.7:51234 in 35")
        #expect(read(Self.v2IPv6) == "complete 2001:db8::7:51234 in 52")
        // LOCAL: the balancer's own connection (a health check) names no source.
        #expect(read(Self.signature + [0x20, 0x00, 0x00, 0x00]) == "complete - in 16")
        // AF_UNIX names no IP address.
        #expect(read(Self.signature + [0x21, 0x31, 0x00, 0x00]) == "complete - in 16")
    }

    @Test func v2WaitsForItsLengthAndRefusesWhatIsBroken() {
        #expect(read(Array(Self.signature.prefix(5))) == "incomplete")
        #expect(read(Array(Self.v2IPv4.prefix(20))) == "incomplete")
        #expect(read(Self.signature + [0x11, 0x11, 0x00, 0x0C]) == "invalid: the v2 header's version is 1")
        #expect(read(Self.signature + [0x22, 0x11, 0x00, 0x0C]) == "invalid: the v2 header's command is 2, not LOCAL or PROXY")
        #expect(read(Self.signature + [0x21, 0x11, 0x00, 0x04, 1, 2, 3, 4]) == "invalid: the v2 header's addresses are cut short")
        #expect(read(Self.signature + [0x21, 0x11, 0xFF, 0xFF]) == "invalid: the v2 header is 65551 bytes, more than 1040")
    }

    @Test func theDecoderPassesOnWhatFollowsTheHeaderAcrossReads() throws {
        let channel = EmbeddedChannel(handler: ProxyProtocolDecoder())
        try channel.writeInbound(ByteBuffer(string: "PROXY TCP4 203.0.113.7 10."))
        #expect(try channel.readInbound(as: ByteBuffer.self) == nil)
        try channel.writeInbound(ByteBuffer(string: "0.0.5 51234 8443\r\nhello"))
        #expect(try channel.readInbound(as: ByteBuffer.self) == ByteBuffer(string: "hello"))
        try channel.writeInbound(ByteBuffer(string: "PROXY again, as data"))
        #expect(try channel.readInbound(as: ByteBuffer.self) == ByteBuffer(string: "PROXY again, as data"))
        let decoder = try channel.pipeline.syncOperations.handler(type: ProxyProtocolDecoder.self)
        #expect(decoder.source?.ipAddress == "203.0.113.7")
        #expect(try channel.finish().isClean)
    }

    @Test func theDecoderClosesAConnectionWithoutAHeader() throws {
        let channel = EmbeddedChannel(handler: ProxyProtocolDecoder())
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 8443)).wait()
        #expect(channel.isActive)
        #expect(throws: ProxyProtocolError.self) { try channel.writeInbound(ByteBuffer(bytes: [0x16, 0x03, 0x01, 0x02, 0x00])) }
        #expect(!channel.isActive)
        #expect(try channel.readInbound(as: ByteBuffer.self) == nil)
    }

    @Test func listenTakesAMappingWithProxyProtocol() throws {
        let mapped = try GatewayConfiguration.parse(
            yaml: "listen: { address: 0.0.0.0:9443, proxy_protocol: true }\n" + minimalConfigurationYAML, baseDirectory: "/etc/gw",
            environment: [:])
        #expect(mapped.listen == ListenAddress(host: "0.0.0.0", port: 9443))
        #expect(mapped.proxyProtocol)
        let plain = try GatewayConfiguration.parse(yaml: "listen: 0.0.0.0:9443\n" + minimalConfigurationYAML, baseDirectory: "/etc/gw", environment: [:])
        #expect(plain.listen == ListenAddress(host: "0.0.0.0", port: 9443))
        #expect(!plain.proxyProtocol)
        let problems = try configurationProblems("listen: { proxy_protocol: maybe, backlog: 5 }\n" + minimalConfigurationYAML)
        #expect(problems.contains("line 1: listen.address: is required (host:port such as 0.0.0.0:8443)"), "\(problems)")
        #expect(problems.contains(#"line 1: listen.proxy_protocol: expected true or false, found "maybe""#), "\(problems)")
        #expect(problems.contains("line 1: listen.backlog: unknown key"), "\(problems)")
    }
}

/// The listener with `proxy_protocol: true`, live.
@Suite struct ProxyProtocolListenerTests {
    /// An enrollment body as osquery sends it.
    func enrollRequest(secret: String, host: String) -> String {
        let body = #"{"enroll_secret":"\#(secret)","host_identifier":"\#(host)","platform_type":"9","host_details":{"osquery_info":{"instance_id":"\#(host)-instance","version":"5.23.1"},"system_info":{"hostname":"\#(host)","uuid":"\#(host)-uuid"}}}"#
        return "POST /enroll HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n" + body
    }

    static let headers: [([UInt8], String)] = [
        (Array("PROXY TCP4 203.0.113.7 127.0.0.1 51234 8443\r\n".utf8), "203.0.113.7"),
        (ProxyHeaderTests.v2IPv6, "2001:db8::7"),
    ]

    @Test(arguments: ProxyProtocolListenerTests.headers)
    func theAgentsAddressFromTheHeaderIsWhatTheBackendHears(header: [UInt8], address: String) async throws {
        try await withBackend { backend in
            try await withUpstreamGateway(backend, configure: { $0.configuration.proxyProtocol = true }) { gateway in
                let client = try await RawTLSClient(port: gateway.port, caCertificate: gateway.pki.caCertificate, proxyHeader: header)
                try await client.send(enrollRequest(secret: gateway.secret, host: "proxied"))
                let body = try await client.responseBody()
                #expect(body.contains(#""node_key":""#), "\(body)")
                let headers = try #require(backend.received(TestBackend.paths.enroll).last?.headers)
                #expect(headers[HTTPField.Name("X-Forwarded-For")!] == address)
                await client.close()
            }
        }
    }

    @Test func aConnectionWithoutTheHeaderIsClosedAndFailuresNameTheProxiedPeer() async throws {
        let logs = LogCapture()
        let gateway = try TestGateway()
        gateway.configuration.proxyProtocol = true
        try await gateway.start(logs: logs)
        do {
            // Through a balancer, a client that fails the handshake is logged with its own address
            // (first: one failure in 10 s is logged).
            let garbage = try await RawTLSClient(
                port: gateway.port, caCertificate: gateway.pki.caCertificate, tls: false,
                proxyHeader: Array("PROXY TCP4 198.51.100.4 127.0.0.1 40000 8443\r\n".utf8))
            try await garbage.send("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
            #expect(await garbage.waitForClose(timeout: .seconds(5)))
            await garbage.close()
            var logged: [String] = []
            for _ in 0..<100 {
                logged = logs.lines.withLockedValue { $0 }.filter { $0.contains("TLS handshake failed") }
                if logged.contains(where: { $0.contains("198.51.100.4") }) { break }
                try await Task.sleep(for: .milliseconds(50))
            }
            #expect(logged.contains { $0.contains("198.51.100.4") }, "\(logged)")
            // An agent that goes around the balancer gets no TLS session at all.
            let direct = try gateway.agent()
            await #expect(throws: (any Error).self) { try await direct.enroll() }
            try await direct.shutdown()
        } catch {
            try? await gateway.stop()
            throw error
        }
        try await gateway.stop()
    }

    /// A real HAProxy with `send-proxy` and `send-proxy-v2` in front of the gateway.
    @Test(.enabled(if: HAProxy.installed, "needs haproxy"), arguments: [HAProxy.SendProxy.v1, .v2])
    func agentsWorkThroughHAProxySendingTheHeader(sendProxy: HAProxy.SendProxy) async throws {
        let gateway = try TestGateway()
        let adminPort = freeLoopbackPort()
        gateway.configuration.proxyProtocol = true
        gateway.configuration.admin = .init(listen: .init(host: "127.0.0.1", port: adminPort))
        try await gateway.start()
        do {
            let proxy = try await HAProxy(backends: [.init(port: gateway.port, healthPort: adminPort)], sendProxy: sendProxy)
            defer { proxy.stop() }
            let agent = try AgentEmulator(
                baseURL: proxy.baseURL, caCertificate: gateway.pki.caCertificate, secret: gateway.secret, newConnectionPerRequest: true)
            let enrolled = try await agent.enroll()
            #expect(enrolled.body == #"{"node_key":"\#(agent.nodeKey ?? "")","node_invalid":false}"#, "\(proxy.output)")
            #expect(try await agent.config().body == GatewayFleet.config)
            #expect(try await agent.log("result", [resultItem("proxied", host: agent.hostIdentifier, columns: ["n": "1"])]).body == "{}")
            try await agent.shutdown()
        } catch {
            try? await gateway.stop()
            throw error
        }
        try await gateway.stop()
    }
}
