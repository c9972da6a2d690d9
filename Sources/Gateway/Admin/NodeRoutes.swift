import Foundation
import Hummingbird
import Support

/// `GET /api/nodes`, `GET /api/nodes/{id-or-host}`, `POST /api/nodes/{id-or-host}/revoke`
/// (docs/admin-api.md).
///
/// Revoking goes through the authenticator, so the node's key is refused at once (cache and store):
/// its next request gets `node_invalid`, the agent enrolls again and shows up as a new enrollment.
struct NodeRoutes: Sendable {
    let store: any NodeStore
    let authenticator: NodeAuthenticator

    func register(on router: Router<AdminRequestContext>) {
        router.get("/api/nodes") { _, _ -> Response in
            let nodes = try await self.stored { try await self.store.allNodes() }
            return AdminResponse.object([("nodes", .array(nodes.map(\.adminJSON)))])
        }
        router.get("/api/nodes/:node") { _, context -> Response in
            let node = try await self.find(try context.parameters.require("node"))
            return AdminResponse.object([("node", node.adminJSON)])
        }
        router.post("/api/nodes/:node/revoke") { _, context -> Response in
            var node = try await self.find(try context.parameters.require("node"))
            if node.revokedAt == nil {
                do {
                    try await self.authenticator.revoke(node)
                } catch {
                    throw AdminError.unavailable("node store unavailable: \(PostgresFailure.describe(error))")
                }
                let id = node.id
                node = try await self.stored { try await self.store.node(id: id) } ?? node
            }
            return AdminResponse.object([("node", node.adminJSON)])
        }
    }

    /// The node with this gateway id, else the one node with this host identifier.
    /// - Throws: `AdminError` 404 when there is none, 409 when several hosts share the identifier.
    func find(_ idOrHost: String) async throws -> NodeRecord {
        if let node = try await self.stored({ try await self.store.node(id: idOrHost) }) { return node }
        let all = try await self.stored { try await self.store.allNodes() }
        let matches = all.filter { $0.hostIdentifier == idOrHost }
        switch matches.count {
        case 0: throw AdminError.notFound("no node with id or host identifier \(idOrHost)")
        case 1: return matches[0]
        default:
            throw AdminError.conflict(
                "\(matches.count) nodes have host identifier \(idOrHost); use a node id: \(matches.map(\.id).joined(separator: ", "))")
        }
    }

    private func stored<T>(_ work: () async throws -> T) async throws -> T {
        do { return try await work() } catch let error as AdminError { throw error } catch {
            throw AdminError.unavailable("node store unavailable: \(PostgresFailure.describe(error))")
        }
    }
}

extension NodeRecord {
    /// A node as the admin API shows it: never its key hash, sealed backend key or host details
    /// beyond the osquery version.
    var adminJSON: JSONValue {
        let details = try? JSONValue(parsing: Array(hostDetails.utf8))
        return .object(JSONObject([
            ("id", .string(id)),
            ("host_identifier", .string(hostIdentifier)),
            ("platform", .optional(OsqueryPlatform.primary(platformType: platformType))),
            ("osquery_version", .optional(details?["osquery_info"]?["version"]?.string)),
            ("secret_name", .optional(secretName)),
            ("certificate_fingerprint", .optional(certificateFingerprint)),
            ("enrolled_at", .string(enrolledAt.adminText)),
            ("last_seen", .optional(lastSeen?.adminText)),
            ("revoked_at", .optional(revokedAt?.adminText)),
        ]))
    }
}

extension Date {
    /// RFC 3339 in UTC with whole seconds, as every admin API time is written.
    var adminText: String { formatted(.iso8601) }
}
