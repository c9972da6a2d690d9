import Logging
import Sinks
import Support

/// One `sinks[]` entry: a log destination's kind with its own checked settings, and the records it
/// takes (`SinkConfiguration+YAML.swift` reads it).
struct SinkConfiguration: Sendable {
    enum Kind: Sendable {
        case file(FileSink.Configuration)
        case zstd(ZstdArchiveSink.Configuration)
        case http(HTTPForwarderSink.Configuration)
        case s3(S3Sink.Configuration)
        case kinesis(KinesisSink.Configuration)
        case firehose(FirehoseSink.Configuration)
        case syslog(SyslogSink.Configuration)
        case nats(NATSSink.Configuration)
        /// Logs re-posted to the upstream backend (needs the `upstream` section).
        case upstream(UpstreamSink.Configuration)
        /// Rows of a PostgreSQL table.
        case postgres(PostgresSink.Configuration)
    }
    var name: String
    var kind: Kind
    var match = SinkMatch()

    /// The folder a file or zstd sink writes to.
    var directory: String? {
        switch kind {
        case .file(let file): return file.directory
        case .zstd(let zstd): return zstd.directory
        case .http, .s3, .kinesis, .firehose, .syslog, .nats, .upstream, .postgres: return nil
        }
    }

    /// The outbound-HTTP settings of an AWS sink, whose CA `check-config` loads.
    var awsEndpoint: HTTPEndpoint? {
        switch kind {
        case .s3(let s3): return s3.connection.httpEndpoint()
        case .kinesis(let kinesis): return kinesis.connection.httpEndpoint()
        case .firehose(let firehose): return firehose.connection.httpEndpoint()
        case .file, .zstd, .http, .syslog, .nats, .upstream, .postgres: return nil
        }
    }

    /// The running sink, with the records it takes.
    /// - Parameter upstream: the backend's nodes, for an `upstream` sink.
    func makeRoute(logger: Logger, upstream: UpstreamNodes? = nil) throws -> LogPipeline.Route {
        let built: any Sink
        switch kind {
        case .file(let file): built = try FileSink(configuration: file)
        case .zstd(let zstd):
            let archive = try ZstdArchiveSink(configuration: zstd)
            for line in archive.recoveryReport { logger.warning("zstd archive recovery: \(line)", metadata: ["gw.sink": "\(name)"]) }
            built = archive
        case .http(let http): built = try HTTPForwarderSink(configuration: http)
        case .s3(let s3): built = try S3Sink(configuration: s3)
        case .kinesis(let kinesis): built = try KinesisSink(configuration: kinesis)
        case .firehose(let firehose): built = try FirehoseSink(configuration: firehose)
        case .syslog(let syslog): built = try SyslogSink(configuration: syslog)
        case .nats(let nats): built = try NATSSink(configuration: nats)
        case .upstream(let configuration):
            guard let upstream else { throw SinkError.io("sink \(name) of type upstream needs the upstream section") }
            built = UpstreamSink(configuration: configuration, nodes: upstream)
        case .postgres(let postgres): built = try PostgresSink(configuration: postgres, logger: logger)
        }
        return LogPipeline.Route(sink: built, match: match)
    }
}

extension LogPipeline {
    /// The spool, the configured sinks and their delivery workers.
    static func make(spool configuration: Spool.Configuration, sinks: [SinkConfiguration], deadLetterDirectory: String,
                     upstream: UpstreamNodes? = nil, logger: Logger) throws -> LogPipeline {
        let routes = try sinks.map { try $0.makeRoute(logger: logger, upstream: upstream) }
        let spool = try Spool(configuration: configuration, sinks: routes.map(\.sink.name))
        logger.info("spool opened", metadata: [
            "gw.segments": "\(spool.segmentCount)", "gw.bytes": "\(spool.size)", "gw.unsent_bytes": "\(spool.unsentSize)",
        ])
        return LogPipeline(spool: spool, routes: routes, deadLetterDirectory: deadLetterDirectory,
                           resendWindow: configuration.resendWindow, logger: logger)
    }
}
