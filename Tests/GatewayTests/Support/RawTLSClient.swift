import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL

/// A TLS connection that sends exactly the bytes it is given, for what an HTTP client cannot do:
/// stall half-way through a request, or send a request target with a raw `#` as osquery does.
final class RawTLSClient: @unchecked Sendable {
    private final class Collector: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = ByteBuffer
        let received = NIOLockedValueBox(ByteBuffer())
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var buffer = unwrapInboundIn(data)
            _ = received.withLockedValue { $0.writeBuffer(&buffer) }
        }
    }

    let channel: any Channel
    private let collector: Collector

    /// Connects with TLS (or plain TCP when `tls` is false) to 127.0.0.1:`port`.
    /// - Parameter proxyHeader: bytes sent in plain before TLS starts, as a balancer sends a PROXY
    ///   protocol header.
    init(port: Int, caCertificate: String, tls: Bool = true, proxyHeader: [UInt8]? = nil) async throws {
        let collector = Collector()
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(caCertificate))
        let context = try NIOSSLContext(configuration: configuration)
        let tlsAtConnect = tls && proxyHeader == nil
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if tlsAtConnect {
                        try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: context, serverHostname: "localhost"))
                    }
                    try channel.pipeline.syncOperations.addHandler(collector)
                }
            }
            .connect(host: "127.0.0.1", port: port).get()
        if let proxyHeader {
            try await channel.writeAndFlush(ByteBuffer(bytes: proxyHeader)).get()
            if tls {
                try await channel.eventLoop.submit {
                    try channel.pipeline.syncOperations.addHandler(
                        NIOSSLClientHandler(context: context, serverHostname: "localhost"), position: .first)
                }.get()
            }
        }
        self.channel = channel
        self.collector = collector
    }

    func send(_ text: String) async throws {
        try await channel.writeAndFlush(ByteBuffer(string: text)).get()
    }

    /// Everything received so far.
    var received: String { collector.received.withLockedValue { String(buffer: $0) } }

    /// Waits until the server closes the connection, up to `timeout`; true if it closed.
    func waitForClose(timeout: Duration) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if !channel.isActive { return true }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return !channel.isActive
    }

    /// Waits for a complete response (headers and Content-Length body) and returns its body.
    func responseBody(timeout: Duration = .seconds(10)) async throws -> String {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let text = received
            if let split = text.range(of: "\r\n\r\n") {
                let head = text[..<split.lowerBound].lowercased()
                if let line = head.split(separator: "\r\n").first(where: { $0.hasPrefix("content-length:") }),
                    let length = Int(line.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)),
                    text.utf8.count - text[..<split.upperBound].utf8.count >= length
                {
                    return String(text[split.upperBound...])
                }
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw CancellationError()
    }

    func close() async {
        try? await channel.close()
    }
}
