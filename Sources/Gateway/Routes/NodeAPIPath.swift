import Foundation
import HTTPTypes
import Hummingbird

/// Turns osquery's hidden `--tls_node_api` URL form back into an ordinary endpoint path, before
/// anything else sees the request.
///
/// In that mode the agent puts its node key in front of every endpoint but enroll
/// (`/<node_key>/config`), adds the `tls_secret_always` parameter after it when that flag is on,
/// and then, for config, logger and distributed requests, appends `&node_key=<key>` even when the
/// URL has no `?` (docs/protocol.md#node-api). So one target can read
/// `/<key>/config?enroll_secret=<secret>&node_key=<key>`.
///
/// The path key is built once, when the agent starts, and can be stale after a re-enrollment; the
/// `&node_key=` suffix is read on every request, so it wins when both are there (carve URLs have
/// only the path key, built for each carve). The key is kept in the request context and the
/// request goes on as `/config?enroll_secret=<secret>`, so routing and `SecretParameterMiddleware`
/// work as for any agent.
///
/// - Important: this runs before the router (a Hummingbird router middleware runs after the route
///   is matched, too late to change the path) and so outside the error middleware, which logs
///   paths: after it no layer sees a node key in a path. It never throws; a target that is not in
///   the node-API form passes as is.
struct NodeAPIPath: Sendable {
    /// Every endpoint path (an exact match is an ordinary request).
    let paths: Set<String>
    /// The endpoints that may follow `/<node_key>` (all but enroll), longest first, so
    /// `/<key>/distributed/read` is never read as key `<key>/distributed` before endpoint `/read`.
    let nodeEndpoints: [String]

    init(endpoints: OsqueryEndpoints) {
        paths = Set(endpoints.all)
        nodeEndpoints = endpoints.all.filter { $0 != endpoints.enroll }.sorted { $0.count > $1.count }
    }

    /// The request as routing should see it, with the key moved into `context`.
    func rewrite(_ request: Request, context: inout GatewayRequestContext) -> Request {
        guard let target = request.head.path, let split = split(target: target) else { return request }
        context.urlNodeKey = split.nodeKey
        var head = request.head
        head.path = split.target
        return Request(head: head, body: request.body)
    }

    func split(target: String) -> (target: String, nodeKey: String)? {
        var rest = Substring(target)
        var suffixKey: Substring?
        // The suffix is the last thing osquery adds; a secret before it may itself hold the marker.
        if let marker = rest.range(of: "&node_key=", options: .backwards) {
            suffixKey = rest[marker.upperBound...]
            rest = rest[..<marker.lowerBound]
        }
        // Endpoints hold no `?`, so the first one ends the path (a raw secret may hold more).
        let queryStart = rest.firstIndex(of: "?") ?? rest.endIndex
        let path = rest[..<queryStart]
        guard path.hasPrefix("/"), !paths.contains(String(path)) else { return nil }
        for endpoint in nodeEndpoints where path.hasSuffix(endpoint) {
            let prefix = path.dropLast(endpoint.count)
            guard prefix.hasPrefix("/") else { continue }
            let pathKey = prefix.dropFirst()
            return (endpoint + rest[queryStart...], String(suffixKey ?? pathKey))
        }
        return nil
    }
}
