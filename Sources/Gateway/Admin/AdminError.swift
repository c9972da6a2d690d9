import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import Support

/// A failed admin API call, rendered as `{"error": "<reason>"}` with a status that says what kind.
struct AdminError: HTTPResponseError, CustomStringConvertible {
    let status: HTTPResponse.Status
    let message: String

    init(_ status: HTTPResponse.Status, _ message: String) {
        self.status = status
        self.message = message
    }

    static func badRequest(_ message: String) -> Self { .init(.badRequest, message) }
    static func notFound(_ message: String) -> Self { .init(.notFound, message) }
    static func conflict(_ message: String) -> Self { .init(.conflict, message) }
    static func unavailable(_ message: String) -> Self { .init(.serviceUnavailable, message) }

    var description: String { message }

    var body: String { "{\"error\":\(JSONString.quoted(message))}" }

    func response(from request: Request, context: some RequestContext) throws -> Response {
        Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: body)))
    }
}

/// The admin listener's outermost middleware: `/api/` calls need a credential (`AdminCredentials`:
/// the bearer token or an admin client certificate), and every failure of an `/api/` call is a JSON
/// body with `error`.
struct AdminAPIMiddleware: RouterMiddleware {
    typealias Context = AdminRequestContext
    let credentials: AdminCredentials

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard request.uri.path.hasPrefix("/api/") || request.uri.path == "/api" else { return try await next(request, context) }
        do {
            if !credentials.acceptsToken(request.headers[.authorization]) {
                // The certificate costs an event-loop hop: read only when it can count.
                var certificate: PeerCertificate?
                if credentials.certificates { certificate = try await context.channel.verifiedPeerCertificate() }
                if let refusal = credentials.refusal(certificate: certificate) { throw refusal }
            }
            return try await next(request, context)
        } catch let error as AdminError {
            return try error.response(from: request, context: context)
        } catch let error as HTTPError {
            let message = error.status == .notFound ? "no admin API route at this path" : (error.body ?? "\(error.status)")
            return try AdminError(error.status, message).response(from: request, context: context)
        } catch {
            context.logger.error("admin API call failed", metadata: ["gw.path": "\(request.uri.path)", "gw.error": "\(error)"])
            return try AdminError(.internalServerError, "internal error: \(error)").response(from: request, context: context)
        }
    }
}

/// JSON answers of the admin API: canonical (sorted keys, compact), so equal content is equal bytes.
enum AdminResponse {
    static func json(_ value: JSONValue, status: HTTPResponse.Status = .ok) -> Response {
        Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: value.canonicalJSON())))
    }

    static func object(_ members: [(String, JSONValue)], status: HTTPResponse.Status = .ok) -> Response {
        json(.object(JSONObject(members)), status: status)
    }
}

extension JSONValue {
    /// A string, or `null` for nil.
    static func optional(_ text: String?) -> JSONValue { text.map(JSONValue.string) ?? .null }
    /// An integer.
    static func int(_ value: Int) -> JSONValue { .number(String(value)) }
}
