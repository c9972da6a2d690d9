import CompressNIO
import HTTPTypes
import Hummingbird
import NIOCore

/// Collects a request body within a limit, inflating gzip bodies (osquery `--logger_tls_compress`).
///
/// The compressed size is capped by `maxBody` and the inflated size by `maxInflated`, so a gzip bomb
/// stops at the cap instead of filling memory. An empty body that claims gzip (osquery sends that
/// when its compression failed, PROTOCOL.md 1.3) is refused with an error body, so the agent keeps
/// its lines rather than having them acknowledged as nothing.
struct RequestBodyReader: Sendable {
    var maxBody: Int
    var maxInflated: Int

    func read(_ request: Request) async throws -> ByteBuffer {
        var body: ByteBuffer
        do {
            body = try await request.body.collect(upTo: maxBody)
        } catch let error as HTTPError where error.status == .contentTooLarge {
            throw OsqueryError.tooLarge("request body is larger than \(maxBody) bytes")
        } catch is NIOTooManyBytesError {
            throw OsqueryError.tooLarge("request body is larger than \(maxBody) bytes")
        }
        guard let encoding = request.headers[.contentEncoding]?.lowercased(), encoding != "identity" else {
            return body
        }
        guard encoding == "gzip" || encoding == "x-gzip" else {
            throw OsqueryError.unsupportedEncoding("Content-Encoding \(encoding) is not supported; use gzip")
        }
        guard body.readableBytes > 0 else {
            throw OsqueryError.badRequest("empty body with Content-Encoding: gzip")
        }
        do {
            let inflated = try body.decompress(with: .gzip(), maxSize: maxInflated)
            return inflated
        } catch let error as CompressNIOError where error == .bufferOverflow {
            throw OsqueryError.tooLarge("gzip body inflates past \(maxInflated) bytes")
        } catch {
            throw OsqueryError.badRequest("gzip body is corrupt or truncated")
        }
    }
}
