import Foundation
import HTTPTypes
import Hummingbird
import Logging
import Metrics

/// The outermost middleware: whatever goes wrong, the agent gets an osquery-shaped JSON body.
///
/// `OsqueryError`s render themselves. Hummingbird's own errors (no route, body over the limit) are
/// mapped to their osquery equivalents; anything else becomes `internal` with an id that is logged
/// here, so an operator can find the cause from what the agent reports.
struct OsqueryErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let response: Response
        do {
            response = try await next(request, context)
        } catch let error as OsqueryError {
            response = try error.response(from: request, context: context)
        } catch let error as HTTPError {
            response = try Self.map(error).response(from: request, context: context)
        } catch {
            let id = UUID().uuidString.lowercased()
            context.logger.error("request failed", metadata: ["gw.error_id": "\(id)", "gw.error": "\(error)", "gw.path": "\(request.uri.path)"])
            response = try OsqueryError.internal(id: id).response(from: request, context: context)
        }
        requestCounters[response.status.code / 100]?.increment()
        return response
    }

    static func map(_ error: HTTPError) -> OsqueryError {
        switch error.status {
        case .notFound: return .notFound("no osquery endpoint at this path")
        case .contentTooLarge: return .tooLarge("request body too large")
        case .methodNotAllowed: return .methodNotAllowed("method not allowed")
        case .badRequest: return .badRequest(error.body ?? "bad request")
        default: return .badRequest(error.body ?? "request rejected")
        }
    }
}

/// `gateway_requests{class="2xx"|"4xx"|"5xx"}`: agent requests by status class. Created on first use,
/// after `serve` has bootstrapped the metrics system.
private let requestCounters: [Int: Counter] = [
    2: Counter(label: "gateway_requests", dimensions: [("class", "2xx")]),
    4: Counter(label: "gateway_requests", dimensions: [("class", "4xx")]),
    5: Counter(label: "gateway_requests", dimensions: [("class", "5xx")]),
]
