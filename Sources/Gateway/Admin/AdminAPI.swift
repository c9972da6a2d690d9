import Hummingbird

/// The admin API's routes (docs/admin-api.md), served by the admin listener under `/api/`.
///
/// JSON in and out; every failure is `{"error": "..."}` (`AdminError`, `AdminAPIMiddleware`).
struct AdminAPI: Sendable {
    /// Who may call it; with none configured the API is off.
    let credentials: AdminCredentials
    let nodes: NodeRoutes
    let queries: QueryRoutes
    let carves: CarveRoutes

    func register(on router: Router<AdminRequestContext>) {
        guard credentials.enabled else { return }
        nodes.register(on: router)
        queries.register(on: router)
        carves.register(on: router)
    }
}
