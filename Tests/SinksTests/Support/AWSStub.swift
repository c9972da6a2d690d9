import Foundation
import HTTPTypes
import Hummingbird
import NIOConcurrencyHelpers
import NIOCore

/// A real HTTP server on 127.0.0.1 playing an AWS endpoint where moto cannot: it answers each
/// request as `respond` says (per-record failures, refusals, a failing part) and records what it got.
final class AWSStub: @unchecked Sendable {
    /// One request as received.
    struct Seen: Sendable {
        var method: String
        var path: String
        var query: String
        var headers: HTTPFields
        var body: ByteBuffer

        func header(_ name: String) -> String? { HTTPField.Name(name).flatMap { headers[$0] } }
        var text: String { String(buffer: body) }
        /// The body as a JSON object (the Kinesis and Firehose calls).
        var json: [String: Any] { (try? JSONSerialization.jsonObject(with: Data(body.readableBytesView))) as? [String: Any] ?? [:] }
    }

    struct Answer: Sendable {
        var status: HTTPResponse.Status = .ok
        var headers: HTTPFields = [:]
        var body = ""
    }

    /// The answer to request number `index` (0-based).
    typealias Responder = @Sendable (_ index: Int, _ request: Seen) -> Answer

    let requests = NIOLockedValueBox<[Seen]>([])
    private let server = LocalHTTPServer()
    var port: Int { server.port }

    func start(respond: @escaping Responder) async throws {
        let router = Router()
        router.add(middleware: Recorder(requests: requests, respond: respond))
        await server.start(router, label: "aws-stub")
    }

    func stop() async {
        await server.stop()
    }

    var url: String { "http://127.0.0.1:\(port)" }
    var seen: [Seen] { requests.withLockedValue { $0 } }
}

/// Answers every request, whatever its path or method, before routing.
private struct Recorder: RouterMiddleware {
    typealias Context = BasicRequestContext
    let requests: NIOLockedValueBox<[AWSStub.Seen]>
    let respond: AWSStub.Responder

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let body = try await request.body.collect(upTo: 64 << 20)
        let seen = AWSStub.Seen(method: request.method.rawValue, path: request.uri.path, query: request.uri.query ?? "",
                                headers: request.headers, body: body)
        let index = requests.withLockedValue { list in
            list.append(seen)
            return list.count - 1
        }
        let answer = respond(index, seen)
        return Response(status: answer.status, headers: answer.headers, body: .init(byteBuffer: ByteBuffer(string: answer.body)))
    }
}
