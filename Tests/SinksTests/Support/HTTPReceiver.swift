import Foundation
import HTTPTypes
import Hummingbird
import NIOConcurrencyHelpers
import NIOCore

/// A real HTTP server on 127.0.0.1 that records what it receives and answers as `respond` says.
final class HTTPReceiver: @unchecked Sendable {
    struct Received: Sendable {
        var body: String
        var headers: HTTPFields
        var at: ContinuousClock.Instant
    }

    /// Status and headers for the n-th request (0-based).
    typealias Responder = @Sendable (Int) -> (HTTPResponse.Status, HTTPFields)

    let received = NIOLockedValueBox<[Received]>([])
    private let server = LocalHTTPServer()
    var port: Int { server.port }

    /// Starts on `requested` (0: any free port); `answer` gives the body of the n-th answer
    /// (default `{"status":<code>}`).
    func start(port requested: Int = 0, respond: @escaping Responder = { _ in (.ok, [:]) },
               answer: (@Sendable (Int) -> String)? = nil) async throws {
        let router = Router()
        let received = self.received
        router.post("/ingest") { request, _ -> Response in
            let body = try await request.body.collect(upTo: 64 << 20)
            let index = received.withLockedValue { list in
                list.append(Received(body: String(buffer: body), headers: request.headers, at: .now))
                return list.count - 1
            }
            let (status, headers) = respond(index)
            let text = answer?(index) ?? "{\"status\":\(status.code)}"
            return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: text)))
        }
        await server.start(router, port: requested, label: "receiver")
    }

    func stop() async {
        await server.stop()
    }

    var url: String { "http://127.0.0.1:\(port)/ingest" }
    var count: Int { received.withLockedValue { $0.count } }

    /// Every record line received, across requests, in arrival order.
    var lines: [String] {
        received.withLockedValue { $0.flatMap { $0.body.split(separator: "\n").map(String.init) } }
    }
}

/// A free TCP port on 127.0.0.1 (bound and released).
func freePort() -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
    _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
    return Int(UInt16(bigEndian: address.sin_port))
}
