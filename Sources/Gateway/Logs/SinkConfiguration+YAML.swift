import Sinks

extension SinkConfiguration {
    /// One `sinks[]` entry: `name`, `type` (`file`, `zstd`, `http`, `s3`, `kinesis`, `firehose`,
    /// `syslog`, `nats`, `upstream`, `postgres`), `match`, and the type's own keys.
    init?(reading entry: MappingReader) {
        let reader = entry.reader
        let name = entry.requiredString("name")
        let type = entry.requiredString("type")
        let match = entry.section("match") { SinkMatch(reading: $0) } ?? SinkMatch()
        let kind: Kind?
        switch type {
        case "file": kind = FileSink.Configuration(reading: entry, name: name ?? "").map(Kind.file)
        case "zstd": kind = ZstdArchiveSink.Configuration(reading: entry, name: name ?? "").map(Kind.zstd)
        case "http": kind = HTTPForwarderSink.Configuration(reading: entry, name: name ?? "").map(Kind.http)
        case "s3": kind = S3Sink.Configuration(reading: entry, name: name ?? "").map(Kind.s3)
        case "kinesis": kind = KinesisSink.Configuration(reading: entry, name: name ?? "").map(Kind.kinesis)
        case "firehose": kind = FirehoseSink.Configuration(reading: entry, name: name ?? "").map(Kind.firehose)
        case "syslog": kind = SyslogSink.Configuration(reading: entry, name: name ?? "").map(Kind.syslog)
        case "nats": kind = NATSSink.Configuration(reading: entry, name: name ?? "").map(Kind.nats)
        case "upstream": kind = .upstream(UpstreamSink.Configuration(reading: entry, name: name ?? ""))
        case "postgres": kind = PostgresSink.Configuration(reading: entry, name: name ?? "").map(Kind.postgres)
        case nil: kind = nil
        case let other?:
            reader.report(entry.key("type"), entry.value("type"), "expected one of file, zstd, http, s3, kinesis, firehose, syslog, nats, upstream, postgres, found \"\(other)\"")
            kind = nil
        }
        guard let name, let kind else { return nil }
        self.init(name: name, kind: kind, match: match)
    }
}

extension SinkMatch {
    /// `match`: `log_type` (`result`, `status`, `distributed`), `query` globs, `secret` names, `platform`s.
    init(reading section: MappingReader) {
        self.init()
        for text in section.strings("log_type") {
            if let kind = LogKind(rawValue: text) {
                logTypes.append(kind)
            } else {
                section.reader.report(section.key("log_type"), section.value("log_type"), "expected result, status or distributed, found \"\(text)\"")
            }
        }
        queries = section.strings("query")
        secrets = section.strings("secret")
        platforms = section.strings("platform")
    }
}
