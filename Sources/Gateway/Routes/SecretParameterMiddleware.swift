import Foundation
import HTTPTypes
import Hummingbird

/// Takes osquery's `--tls_secret_always` parameter off the URL before routing and logging.
///
/// With that flag the agent appends `?enroll_secret=<secret>` (or `&...`, named by
/// `--tls_enroll_override`) to every URL, **not URL-encoded** (docs/protocol.md#enrollment). A secret
/// holding `&`, `=` or `#` therefore cannot be split like a normal query: the parameter is the last
/// thing osquery adds, so its value is everything after `name=` to the end of the target. The value
/// is kept in the request context (enrollment may use it) and the request goes on without it, so
/// routing works and the secret never reaches a log line.
struct SecretParameterMiddleware: RouterMiddleware {
    typealias Context = GatewayRequestContext
    let field: String

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let target = request.head.path, let split = Self.split(target: target, field: field) else {
            return try await next(request, context)
        }
        var context = context
        context.urlSecret = split.secret
        var head = request.head
        head.path = split.target
        return try await next(Request(head: head, body: request.body), context)
    }

    /// The target without the parameter, and the parameter's raw value.
    static func split(target: String, field: String) -> (target: String, secret: String)? {
        guard let question = target.firstIndex(of: "?") else { return nil }
        let query = target[target.index(after: question)...]
        let marker = field + "="
        var searchStart = query.startIndex
        while let found = query[searchStart...].range(of: marker) {
            let atStart = found.lowerBound == query.startIndex || query[query.index(before: found.lowerBound)] == "&"
            if atStart {
                let secret = String(query[found.upperBound...])
                var before = query[..<found.lowerBound]
                if before.hasSuffix("&") { before = before.dropLast() }
                let path = String(target[..<question])
                return (before.isEmpty ? path : path + "?" + before, secret)
            }
            searchStart = found.upperBound
        }
        return nil
    }
}
