import NIOHTTP1
import Sinks
import Support

extension FileSink.Configuration {
    /// A `file` sink: `directory` (in `data_dir`), `max_file_size`, `rotate_every`, `keep`.
    init?(reading entry: MappingReader, name: String) {
        guard let directory = entry.requiredString("directory") else { return nil }
        self.init(name: name, directory: entry.reader.inDataDir(directory))
        maxFileSize = entry.size("max_file_size")
        rotateEvery = entry.duration("rotate_every")
        keep = entry.integer("keep", in: 0...10_000) ?? 10
    }
}

extension ZstdArchiveSink.Configuration {
    /// A `zstd` sink: `directory` (in `data_dir`), `level`, `roll_every`, `max_file_size`.
    init?(reading entry: MappingReader, name: String) {
        guard let directory = entry.requiredString("directory") else { return nil }
        self.init(name: name, directory: entry.reader.inDataDir(directory))
        level = entry.integer("level", in: 1...19) ?? 3
        rollEvery = entry.duration("roll_every") ?? .seconds(3600)
        maxFileSize = entry.size("max_file_size") ?? (1 << 30)
    }
}

extension HTTPForwarderSink.Configuration {
    /// An `http` sink: the outbound-HTTP endpoint keys (always POST), `format`, `compression`,
    /// `index`, `table` (required for `clickhouse`) and `batch` (`max_records`, `max_bytes`, `max_wait`).
    init?(reading entry: MappingReader, name: String) {
        guard let endpoint = HTTPEndpoint(reading: entry, method: .POST, timeout: .seconds(30)) else { return nil }
        self.init(name: name, endpoint: endpoint)
        format = entry.choice("format", HTTPForwarderFormat.self) ?? .ndjson
        compression = entry.choice("compression", HTTPForwarderSink.Compression.self) ?? .none
        index = entry.string("index")
        table = entry.string("table")
        if format == .clickhouse && table == nil {
            entry.reader.report(entry.key("table"), entry.node, "is required for the clickhouse format")
        }
        if let batch = entry.mapping("batch") {
            if let value = batch.integer("max_records", in: 1...1_000_000) { batching.maxRecords = value }
            if let value = batch.size("max_bytes") { batching.maxBytes = value }
            if let value = batch.duration("max_wait") { batching.maxWait = value }
            batch.finish()
        }
    }
}

extension UpstreamSink.Configuration {
    /// An `upstream` sink: `batch` (`max_records`, `max_bytes`, `max_wait`); where it posts is the
    /// `upstream` section.
    init(reading entry: MappingReader, name: String) {
        self.init(name: name)
        if let batch = entry.mapping("batch") {
            if let value = batch.integer("max_records", in: 1...1_000_000) { batching.maxRecords = value }
            if let value = batch.size("max_bytes") { batching.maxBytes = value }
            if let value = batch.duration("max_wait") { batching.maxWait = value }
            batch.finish()
        }
    }
}
