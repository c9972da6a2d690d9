import Sinks
import Support

extension PostgresSink.Configuration {
    /// A `postgres` sink: the database keys (`url`, `password_file`, `tls`, `ca`, `connect_timeout`,
    /// `timeout` (one batch, default 30s), `pool_size`), `table` (default `osquery_logs`, created
    /// when missing) and `batch` (`max_records`, `max_bytes`, `max_wait`).
    init?(reading entry: MappingReader, name: String) {
        let endpoint = PostgresEndpoint(reading: entry, urlKey: "url", timeout: .seconds(30))
        let table = entry.string("table")
        if let table, !Self.isValidTable(table) {
            entry.reader.report(entry.key("table"), entry.value("table"),
                                "expected a plain table name (lower-case letters, digits, _; optionally schema.table), found \"\(table)\"")
        }
        var batching = Batching(maxRecords: 1_000, maxBytes: 4 << 20, maxWait: .seconds(1))
        if let batch = entry.mapping("batch") {
            if let value = batch.integer("max_records", in: 1...100_000) { batching.maxRecords = value }
            if let value = batch.size("max_bytes") { batching.maxBytes = value }
            if let value = batch.duration("max_wait") { batching.maxWait = value }
            batch.finish()
        }
        guard let endpoint else { return nil }
        self.init(name: name, endpoint: endpoint)
        if let table { self.table = table }
        self.batching = batching
    }
}
