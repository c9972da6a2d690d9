import Hummingbird

/// The admin API's routes (docs/admin-api.md), served by the admin listener under `/api/`.
///
/// JSON in and out; every failure is `{"error": "..."}` (`AdminError`, `AdminAPIMiddleware`).
struct AdminAPI: Sendable {
    /// nil: the API is off (no `admin.token_file` / `admin.token_env`).
    let token: AdminToken?
    let nodes: NodeRoutes
    let queries: QueryRoutes
    let carves: CarveRoutes

    func register(on router: Router<BasicRequestContext>) {
        guard token != nil else { return }
        nodes.register(on: router)
        queries.register(on: router)
        carves.register(on: router)
    }
}
