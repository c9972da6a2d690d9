import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import Synchronization

/// Reads a request body within limits, inflating gzip bodies (osquery `--logger_tls_compress`) as
/// the chunks arrive.
///
/// What one request, or many hostile ones together, can cost is bounded four ways:
/// - `maxBody` caps the bytes on the wire and `maxInflated` the inflated size, so a gzip bomb stops
///   at the cap instead of filling memory;
/// - the whole body must arrive by `timeout` after the head, so a sender dribbling a large body is
///   cut off (the idle timeout alone restarts with every byte);
/// - every request's bytes past its first `freeBytes` are drawn from one shared `BodyBudget`; over
///   it the request gets the 503 error body and osquery keeps its batch for later, so a crowd of
///   large or hostile bodies cannot take the machine's memory while small requests still pass;
/// - inflation yields between chunks, so a bomb shares the cooperative threads with other requests.
///
/// An empty body that claims gzip (osquery sends that when its compression failed,
/// docs/protocol.md#gzip) is refused with an error body, so the agent keeps its lines rather than
/// having them acknowledged as nothing.
struct RequestBodyReader: Sendable {
    var maxBody: Int
    var maxInflated: Int
    var timeout: Duration = .seconds(60)
    var budget: BodyBudget = .unlimited

    /// Bytes of each request that never count against the budget (enroll, config and distributed
    /// read bodies are far smaller), so small requests pass whatever large ones hold.
    static let freeBytes = 64 << 10

    func read(_ request: Request) async throws -> ByteBuffer {
        let gzip: Bool
        switch request.headers[.contentEncoding]?.lowercased() {
        case nil, "identity": gzip = false
        case "gzip", "x-gzip": gzip = true
        case let other?: throw OsqueryError.unsupportedEncoding("Content-Encoding \(other) is not supported; use gzip")
        }
        let deadline = ContinuousClock.now + timeout
        var held = 0
        defer { budget.release(held) }
        func account(_ total: Int) throws {
            let needed = max(0, total - Self.freeBytes)
            guard needed > held else { return }
            guard budget.reserve(needed - held) else {
                throw OsqueryError.busy("the gateway holds too many large request bodies right now; retry later")
            }
            held = needed
        }
        var wire = 0
        var body = ByteBuffer()
        let inflater = gzip ? GzipInflater() : nil
        do {
            for try await chunk in request.body {
                guard ContinuousClock.now < deadline else {
                    throw OsqueryError.tooSlow("request body did not arrive within \(timeout)")
                }
                wire += chunk.readableBytes
                guard wire <= maxBody else { throw OsqueryError.tooLarge("request body is larger than \(maxBody) bytes") }
                if let inflater {
                    try account(wire + body.readableBytes + chunk.readableBytes * 4)
                    do {
                        try inflater.inflate(chunk, into: &body, limit: maxInflated)
                    } catch .tooLarge {
                        throw OsqueryError.tooLarge("gzip body inflates past \(maxInflated) bytes")
                    } catch {
                        throw OsqueryError.badRequest("gzip body is corrupt or truncated: \(error)")
                    }
                    try account(wire + body.readableBytes)
                    if chunk.readableBytes > 0 { await Task.yield() }
                } else {
                    try account(wire)
                    if body.readableBytes == 0 { body = chunk } else { body.writeImmutableBuffer(chunk) }
                }
            }
        } catch let error as HTTPError where error.status == .contentTooLarge {
            throw OsqueryError.tooLarge("request body is larger than \(maxBody) bytes")
        } catch is NIOTooManyBytesError {
            throw OsqueryError.tooLarge("request body is larger than \(maxBody) bytes")
        }
        if let inflater {
            guard wire > 0 else { throw OsqueryError.badRequest("empty body with Content-Encoding: gzip") }
            do {
                try inflater.finish()
            } catch {
                throw OsqueryError.badRequest("gzip body is corrupt or truncated")
            }
        }
        return body
    }
}

/// Bytes of request bodies all requests together may hold (`limits.in_flight_bytes`).
final class BodyBudget: Sendable {
    let limit: Int
    private let used = Atomic<Int>(0)

    init(limit: Int) {
        self.limit = limit
    }

    static let unlimited = BodyBudget(limit: .max / 2)

    /// Takes `bytes` if they fit.
    func reserve(_ bytes: Int) -> Bool {
        let after = used.add(bytes, ordering: .relaxed).newValue
        if after > limit {
            used.subtract(bytes, ordering: .relaxed)
            return false
        }
        return true
    }

    func release(_ bytes: Int) {
        if bytes > 0 { used.subtract(bytes, ordering: .relaxed) }
    }

    /// Bytes held now.
    var inUse: Int { used.load(ordering: .relaxed) }
}
