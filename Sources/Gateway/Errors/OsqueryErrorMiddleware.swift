import Foundation
import HTTPTypes
import Hummingbird
import Logging
import Metrics
import NIOCore
import NIOHTTP1

/// The outermost middleware: whatever goes wrong, the agent gets an osquery-shaped JSON body.
///
/// `OsqueryError`s render themselves. A body decoder's `OsqueryBodyError` and Hummingbird's own
/// errors (no route, body over the limit) are mapped to their osquery equivalents; anything else
/// becomes `internal` with an id that is logged here, so an operator can find the cause from what
/// the agent reports.
struct OsqueryErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let response: Response
        do {
            response = try await next(request, context)
        } catch let error as OsqueryError {
            response = try error.response(from: request, context: context)
        } catch let error as OsqueryBodyError {
            response = try Self.map(error).response(from: request, context: context)
        } catch let error as HTTPError {
            response = try Self.map(error).response(from: request, context: context)
        } catch let error as HTTPParserError {
            // A body that breaks HTTP framing mid-way (a malformed chunk size) or ends because the
            // client went away. Rethrown, Hummingbird answers 400 and closes, and
            // `ProtocolErrorBodyHandler` gives that answer its JSON body. A client that disconnects
            // mid-body is normal traffic: counted and logged at debug, not an error with an id.
            if error == .invalidEOFState {
                clientDisconnects.increment()
                context.logger.debug("client closed the connection mid-request", metadata: ["gw.path": "\(request.uri.path)"])
            }
            requestCounters[4]?.increment()
            throw error
        } catch let error as ChannelError where error == .ioOnClosedChannel || error == .eof {
            clientDisconnects.increment()
            context.logger.debug("client closed the connection mid-request", metadata: ["gw.path": "\(request.uri.path)"])
            throw error
        } catch {
            let id = UUID().uuidString.lowercased()
            context.logger.error("request failed", metadata: ["gw.error_id": "\(id)", "gw.error": "\(error)", "gw.path": "\(request.uri.path)"])
            response = try OsqueryError.internal(id: id).response(from: request, context: context)
        }
        requestCounters[response.status.code / 100]?.increment()
        return response
    }

    /// The one place a body the endpoint cannot take becomes the agent's 400 `{"error": ...}`.
    static func map(_ error: OsqueryBodyError) -> OsqueryError {
        .badRequest(error.message)
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

/// `gateway_client_disconnects`: requests whose client went away before the body was complete.
private let clientDisconnects = Counter(label: "gateway_client_disconnects")

/// `gateway_requests{class="2xx"|"4xx"|"5xx"}`: agent requests by status class. Created on first use,
/// after `serve` has bootstrapped the metrics system.
private let requestCounters: [Int: Counter] = [
    2: Counter(label: "gateway_requests", dimensions: [("class", "2xx")]),
    4: Counter(label: "gateway_requests", dimensions: [("class", "4xx")]),
    5: Counter(label: "gateway_requests", dimensions: [("class", "5xx")]),
]
