/// What the osquery endpoints do differently in front of a backend (`OsqueryRoutes.upstream`):
/// per-node configs, and distributed queries and carves passed through.
struct UpstreamEndpoints: Sendable {
    let config: UpstreamConfig
    let passThrough: UpstreamPassThrough
}
