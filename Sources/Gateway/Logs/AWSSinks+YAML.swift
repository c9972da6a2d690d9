import Sinks

extension AWSConnection {
    /// The keys every AWS sink takes: `region` (default `AWS_REGION`, then `AWS_DEFAULT_REGION`),
    /// `endpoint` (an S3/Kinesis/Firehose-compatible server; default AWS's), `credentials_file` with
    /// `profile` (default `default`), else the `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and
    /// `AWS_SESSION_TOKEN` environment variables, `ca` (the endpoint's CA bundle), `timeout` (a
    /// whole request, default 30s) and `connect_timeout` (default 5s).
    ///
    /// A credentials file is read now, so `check-config` reports a missing one or profile, and
    /// read again by the sink whenever it changes.
    init?(reading entry: MappingReader) {
        let reader = entry.reader
        let region = entry.string("region") ?? reader.environment["AWS_REGION"] ?? reader.environment["AWS_DEFAULT_REGION"]
        if region?.isEmpty ?? true {
            reader.report(entry.key("region"), entry.value("region") ?? entry.node, "is required (or set AWS_REGION)")
        }
        let endpoint = entry.string("endpoint")
        if let endpoint, !endpoint.hasPrefix("http://"), !endpoint.hasPrefix("https://") {
            reader.report(entry.key("endpoint"), entry.value("endpoint"), "must start with http:// or https://")
        }
        let file = entry.configPath("credentials_file")
        let profile = entry.string("profile")
        var credentials: AWSCredentials.Source?
        if let file {
            let profile = profile ?? "default"
            do {
                _ = try AWSCredentials.load(file: file, profile: profile)
                credentials = .file(path: file, profile: profile)
            } catch {
                reader.report(entry.key("credentials_file"), entry.value("credentials_file"), "\(error)")
            }
        } else if profile != nil {
            reader.report(entry.key("profile"), entry.value("profile"), "needs credentials_file")
        } else if let fromEnvironment = AWSCredentials(environment: reader.environment) {
            credentials = .fixed(fromEnvironment)
        } else {
            reader.report(entry.path, entry.node, "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or give credentials_file")
        }
        let ca = entry.configPath("ca")
        let timeout = entry.duration("timeout", minimum: .milliseconds(1))
        let connectTimeout = entry.duration("connect_timeout", minimum: .milliseconds(1))
        guard let region, !region.isEmpty, let credentials else { return nil }
        self.init(region: region, endpoint: endpoint, credentials: credentials)
        self.ca = ca
        if let timeout { requestTimeout = timeout }
        if let connectTimeout { self.connectTimeout = connectTimeout }
    }
}

extension S3Sink.Configuration {
    /// An `s3` sink: `bucket`, `prefix`, `roll_every` (default 5m), `roll_size` (default 64MiB),
    /// `part_size` (default 16MiB, at least 5MiB), `level` (1-19, default 3), `gateway_id` (default
    /// the host name) and the AWS keys (`AWSConnection`).
    init?(reading entry: MappingReader, name: String) {
        let bucket = entry.requiredString("bucket")
        if let bucket, bucket.contains("/") || bucket.contains(" ") {
            entry.reader.report(entry.key("bucket"), entry.value("bucket"), "is a bucket name, without / or spaces")
        }
        let prefix = entry.string("prefix")
        let rollEvery = entry.duration("roll_every", minimum: .seconds(1))
        let rollSize = entry.size("roll_size", minimum: 64 << 10)
        let partSize = entry.size("part_size", minimum: 5 << 20)
        let level = entry.integer("level", in: 1...19)
        let gatewayID = entry.string("gateway_id")
        if let gatewayID, gatewayID.isEmpty || !gatewayID.unicodeScalars.allSatisfy(Self.isKeySafe) {
            entry.reader.report(entry.key("gateway_id"), entry.value("gateway_id"), "may only hold letters, digits, '.', '_' and '-'")
        }
        guard let connection = AWSConnection(reading: entry), let bucket else { return nil }
        self.init(name: name, bucket: bucket, connection: connection)
        if let prefix { self.prefix = prefix }
        if let rollEvery { self.rollEvery = rollEvery }
        if let rollSize { self.rollSize = rollSize }
        if let partSize { self.partSize = partSize }
        if let level { self.level = level }
        if let gatewayID { self.gatewayID = gatewayID }
    }

    /// What a `gateway_id` may hold: characters that need no escaping in a key or a URL.
    private static func isKeySafe(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar {
        case "A"..."Z", "a"..."z", "0"..."9", ".", "_", "-": return true
        default: return false
        }
    }
}

extension KinesisSink.Configuration {
    /// A `kinesis` sink: `stream`, `batch` (`max_records` up to 500, `max_bytes`, `max_wait`) and the
    /// AWS keys (`AWSConnection`).
    init?(reading entry: MappingReader, name: String) {
        let stream = entry.requiredString("stream")
        let batch = BatchKeys(reading: entry, maxRecords: 500)
        guard let connection = AWSConnection(reading: entry), let stream else { return nil }
        self.init(name: name, stream: stream, connection: connection)
        batch.apply(to: &batching)
    }
}

extension FirehoseSink.Configuration {
    /// A `firehose` sink: `delivery_stream`, `batch` (`max_records` up to 500, `max_bytes`,
    /// `max_wait`) and the AWS keys (`AWSConnection`).
    init?(reading entry: MappingReader, name: String) {
        let deliveryStream = entry.requiredString("delivery_stream")
        let batch = BatchKeys(reading: entry, maxRecords: 500)
        guard let connection = AWSConnection(reading: entry), let deliveryStream else { return nil }
        self.init(name: name, deliveryStream: deliveryStream, connection: connection)
        batch.apply(to: &batching)
    }
}

/// The `batch` section of the record sinks: `max_records` (from 1 to the service's limit),
/// `max_bytes`, `max_wait`; each key given replaces the sink's default.
private struct BatchKeys {
    var maxRecords: Int?
    var maxBytes: Int?
    var maxWait: Duration?

    init(reading entry: MappingReader, maxRecords limit: Int) {
        guard let batch = entry.mapping("batch") else { return }
        maxRecords = batch.integer("max_records", in: 1...limit)
        maxBytes = batch.size("max_bytes", minimum: 1)
        maxWait = batch.duration("max_wait")
        batch.finish()
    }

    func apply(to batching: inout Batching) {
        if let maxRecords { batching.maxRecords = maxRecords }
        if let maxBytes { batching.maxBytes = maxBytes }
        if let maxWait { batching.maxWait = maxWait }
    }
}
