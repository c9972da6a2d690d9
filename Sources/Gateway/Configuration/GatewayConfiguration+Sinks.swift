import Foundation
import Sinks
import Yams

extension GatewayConfiguration {
    /// Reads one `sinks[]` entry: name, type, match, and the type's own keys.
    static func readSink(_ entry: MappingReader, reader: YAMLReader, inConfigDir: (String) -> String, inDataDir: (String) -> String) -> Sink? {
        let name = entry.requiredString("name")
        let type = entry.requiredString("type")
        var match = SinkMatch()
        if let section = entry.mapping("match") {
            for text in section.strings("log_type") {
                if let kind = LogKind(rawValue: text) {
                    match.logTypes.append(kind)
                } else {
                    reader.report(section.key("log_type"), section.value("log_type"), "expected result, status or distributed, found \"\(text)\"")
                }
            }
            match.queries = section.strings("query")
            match.secrets = section.strings("secret")
            match.platforms = section.strings("platform")
            section.finish()
        }
        let kind: Sink.Kind?
        switch type {
        case "file":
            var file = FileSink.Configuration(name: name ?? "", directory: inDataDir(entry.requiredString("directory") ?? ""))
            file.maxFileSize = entry.size("max_file_size")
            file.rotateEvery = entry.duration("rotate_every")
            file.keep = entry.integer("keep", in: 0...10_000) ?? 10
            kind = .file(file)
        case "zstd":
            var zstd = ZstdArchiveSink.Configuration(name: name ?? "", directory: inDataDir(entry.requiredString("directory") ?? ""))
            zstd.level = entry.integer("level", in: 1...19) ?? 3
            zstd.rollEvery = entry.duration("roll_every") ?? .seconds(3600)
            zstd.maxFileSize = entry.size("max_file_size") ?? (1 << 30)
            kind = .zstd(zstd)
        case "http":
            var http = HTTPForwarderSink.Configuration(name: name ?? "", url: entry.requiredString("url") ?? "")
            if !http.url.isEmpty && !http.url.hasPrefix("http://") && !http.url.hasPrefix("https://") {
                reader.report(entry.key("url"), entry.value("url"), "must start with http:// or https://")
            }
            http.format = entry.choice("format", HTTPForwarderFormat.self) ?? .ndjson
            http.compression = entry.choice("compression", HTTPForwarderSink.Compression.self) ?? .none
            if let headers = entry.mapping("headers") {
                for key in headers.keys { if let value = headers.string(key) { http.headers.append((key, value)) } }
                headers.finish()
            }
            if let auth = entry.mapping("auth") {
                let header = auth.string("header") ?? "Authorization"
                let prefix = auth.string("prefix") ?? ""
                let env = auth.string("env")
                let file = auth.string("file")
                switch (env, file) {
                case (let env?, nil):
                    if let value = reader.environment[env] {
                        http.headers.append((header, prefix + value))
                    } else {
                        reader.report(auth.key("env"), auth.value("env"), "environment variable \(env) is not set")
                    }
                case (nil, let file?):
                    let path = inConfigDir(file)
                    if let value = try? String(contentsOfFile: path, encoding: .utf8) {
                        http.headers.append((header, prefix + value.trimmingCharacters(in: .whitespacesAndNewlines)))
                    } else {
                        reader.report(auth.key("file"), auth.value("file"), "cannot read \(path)")
                    }
                default:
                    reader.report(auth.path, auth.node, "give exactly one of env or file")
                }
                auth.finish()
            }
            http.index = entry.string("index")
            http.table = entry.string("table")
            if http.format == .clickhouse && http.table == nil {
                reader.report(entry.key("table"), entry.node, "is required for the clickhouse format")
            }
            http.ca = entry.string("ca").map(inConfigDir)
            let certificate = entry.string("client_certificate").map(inConfigDir)
            let key = entry.string("client_key").map(inConfigDir)
            if let certificate, let key { http.clientCertificate = (certificate, key) }
            if (certificate == nil) != (key == nil) {
                reader.report(entry.key("client_key"), entry.node, "client_certificate and client_key go together")
            }
            if let timeout = entry.duration("timeout") { http.timeout = timeout }
            if let batch = entry.mapping("batch") {
                if let value = batch.integer("max_records", in: 1...1_000_000) { http.batching.maxRecords = value }
                if let value = batch.size("max_bytes") { http.batching.maxBytes = value }
                if let value = batch.duration("max_wait") { http.batching.maxWait = value }
                batch.finish()
            }
            kind = .http(http)
        case nil:
            kind = nil
        default:
            reader.report(entry.key("type"), entry.value("type"), "expected one of file, zstd, http, found \"\(type!)\"")
            kind = nil
        }
        entry.finish()
        guard let name, let kind else { return nil }
        return Sink(name: name, kind: kind, match: match)
    }
}
