import Support

/// The `node_store` section: where nodes are kept, read by `init(reading:)`.
enum NodeStoreConfiguration: Sendable, Equatable {
    /// One SQLite file in `data_dir` (the default: `nodes.sqlite`).
    case sqlite(SQLiteNodeStore.Configuration)
    /// A PostgreSQL database several gateways share.
    case postgres(PostgresNodeStore.Configuration)
}

extension NodeStoreConfiguration {
    /// `node_store`: `sqlite` (a file in `data_dir`), or `postgres` (a URL) with the database keys of
    /// `PostgresEndpoint` (`password_file`, `tls`, `ca`, `connect_timeout`, `timeout` (default 5s),
    /// `pool_size`) and `reload_every` (the caches' backstop reload, default 60s, at least 1s); not
    /// both.
    init(reading section: MappingReader) {
        guard section.value("postgres") != nil else {
            self = .sqlite(SQLiteNodeStore.Configuration(reading: section))
            return
        }
        if section.value("sqlite") != nil {
            section.reader.report(section.key("sqlite"), section.value("sqlite"), "give sqlite or postgres, not both")
        }
        var control = PostgresControlChannel.Configuration()
        if let reload = section.duration("reload_every", minimum: .seconds(1)) { control.reloadInterval = reload }
        let fallback = SQLiteNodeStore.Configuration(path: section.reader.inDataDir("nodes.sqlite"))
        self = PostgresEndpoint(reading: section, urlKey: "postgres", timeout: .seconds(5))
            .map { NodeStoreConfiguration.postgres(PostgresNodeStore.Configuration(endpoint: $0, control: control)) } ?? .sqlite(fallback)
    }
}
