import Sinks
import Support

extension SyslogSink.Configuration {
    /// A `syslog` sink: `address` (`tcp://host:port` or `tls://host:port`), `app_name` (default
    /// `osquery`), `facility` (a name, default `local0`), for `tls://` only `ca`, and
    /// `client_certificate` with `client_key`; `timeout` (writing one batch, default 30s),
    /// `connect_timeout` (default 5s) and `batch` (`max_records`, `max_bytes`, `max_wait`).
    init?(reading entry: MappingReader, name: String) {
        let reader = entry.reader
        // Every key is read before any verdict, so one bad value does not make the others "unknown".
        let addressText = entry.requiredString("address")
        let appName = entry.string("app_name")
        let facility = entry.choice("facility", SyslogFacility.self)
        let ca = entry.configPath("ca")
        let certificate = entry.configPath("client_certificate")
        let key = entry.configPath("client_key")
        let timeout = entry.duration("timeout", minimum: .milliseconds(1))
        let connectTimeout = entry.duration("connect_timeout", minimum: .milliseconds(1))
        var batching = Batching(maxRecords: 1_000, maxBytes: 4 << 20, maxWait: .zero)
        batching.read(from: entry)

        guard let text = addressText else { return nil }
        guard let address = NetworkAddress(parsing: text, schemes: ["tcp", "tls"]) else {
            reader.report(entry.key("address"), entry.value("address"), "expected tcp://host:port or tls://host:port, found \"\(text)\"")
            return nil
        }
        self.init(name: name, address: address)
        if let appName {
            if SyslogSink.isValidAppName(appName) {
                self.appName = appName
            } else {
                reader.report(entry.key("app_name"), entry.value("app_name"), "must be 1 to 48 printable ASCII characters without spaces")
            }
        }
        if let facility { self.facility = facility }
        if address.scheme != "tls", ca != nil || certificate != nil || key != nil {
            reader.report(entry.key("ca"), entry.node, "ca, client_certificate and client_key are for tls:// addresses only")
        }
        self.ca = ca
        if let certificate, let key { clientCertificate = .init(certificate: certificate, privateKey: key) }
        if (certificate == nil) != (key == nil) {
            reader.report(entry.key("client_key"), entry.node, "client_certificate and client_key go together")
        }
        if let timeout { writeTimeout = timeout }
        if let connectTimeout { self.connectTimeout = connectTimeout }
        self.batching = batching
    }
}

extension NATSSink.Configuration {
    /// A `nats` sink: `url` (`nats://[user[:password]@]host[:port]`, port 4222 by default; `tls://`
    /// insists on TLS), `tls` (`ca`, `client_certificate` with `client_key`, `server_name`; any of
    /// them, even `tls: {}`, insists on TLS), `subject` (a template, default
    /// `osquery.{log_type}.{name}`), `jetstream` (`stream`: created when missing; `subjects`: the new
    /// stream's subjects, by default the template's fixed prefix and `>`), `timeout` (for the
    /// acknowledgements of one batch, default 10s), `connect_timeout` (default 5s) and `batch`
    /// (`max_records`, `max_bytes`, `max_wait`).
    init?(reading entry: MappingReader, name: String) {
        let reader = entry.reader
        let urlText = entry.requiredString("url")
        let subjectText = entry.string("subject") ?? "osquery.{log_type}.{name}"
        let jetstream = entry.section("jetstream") { section -> (stream: String?, subjects: [String]?) in
            let stream = section.requiredString("stream")
            let subjects = section.value("subjects") == nil ? nil : section.strings("subjects")
            if let stream, !NATSSink.Configuration.isValidStreamName(stream) {
                reader.report(section.key("stream"), section.value("stream"), "a stream name cannot be empty or hold spaces, ., *, >, / or \\")
            }
            if let subjects, subjects.isEmpty || subjects.contains(where: { $0.isEmpty || $0.contains(where: \.isWhitespace) }) {
                reader.report(section.key("subjects"), section.value("subjects"), "expected one or more subjects without spaces")
            }
            return (stream, subjects)
        }
        let tls = entry.section("tls") { section -> NATSTLS in
            let certificate = section.configPath("client_certificate")
            let key = section.configPath("client_key")
            var tls = NATSTLS(ca: section.configPath("ca"), serverName: section.string("server_name"))
            if let certificate, let key { tls.clientCertificate = .init(certificate: certificate, privateKey: key) }
            if (certificate == nil) != (key == nil) {
                reader.report(section.key("client_key"), section.node, "client_certificate and client_key go together")
            }
            if let serverName = tls.serverName, serverName.isEmpty || serverName.contains(where: { $0.isWhitespace || $0 == "/" }) {
                reader.report(section.key("server_name"), section.value("server_name"), "expected a host name, found \"\(serverName)\"")
            }
            return tls
        }
        let ackTimeout = entry.duration("timeout", minimum: .milliseconds(1))
        let connectTimeout = entry.duration("connect_timeout", minimum: .milliseconds(1))
        var batching = Batching(maxRecords: 1_000, maxBytes: 4 << 20, maxWait: .zero)
        batching.read(from: entry)

        var template: NATSSubjectTemplate?
        do {
            template = try NATSSubjectTemplate(subjectText)
        } catch {
            reader.report(entry.key("subject"), entry.value("subject") ?? entry.node, "\(error)")
        }
        guard let url = urlText else { return nil }
        guard let address = NetworkAddress(parsing: url, schemes: ["nats", "tls"], defaultPort: 4222) else {
            reader.report(entry.key("url"), entry.value("url"),
                          "expected nats://host:port or tls://host:port (user and password optional: nats://user:password@host:port), found \"\(url)\"")
            return nil
        }
        guard let subject = template else { return nil }
        self.init(name: name, address: address, subject: subject)
        self.tls = tls
        if let jetstream {
            stream = jetstream.stream
            streamSubjects = jetstream.subjects
            if jetstream.subjects == nil, subject.streamSubjects == nil {
                reader.report(entry.key("jetstream.subjects"), entry.value("jetstream"),
                              "is needed: the subject template starts with a placeholder, so the stream's subjects cannot be derived from it")
            }
        }
        if let ackTimeout { self.ackTimeout = ackTimeout }
        if let connectTimeout { self.connectTimeout = connectTimeout }
        self.batching = batching
    }

    /// A JetStream stream name: not empty, no whitespace, `.`, `*`, `>`, `/` or `\`.
    static func isValidStreamName(_ name: String) -> Bool {
        !name.isEmpty && !name.contains(where: { $0.isWhitespace || ".*>/\\".contains($0) })
    }
}

extension Batching {
    /// `batch`: `max_records`, `max_bytes`, `max_wait`, each replacing the sink's default.
    mutating func read(from entry: MappingReader) {
        guard let batch = entry.mapping("batch") else { return }
        if let value = batch.integer("max_records", in: 1...1_000_000) { maxRecords = value }
        if let value = batch.size("max_bytes") { maxBytes = value }
        if let value = batch.duration("max_wait") { maxWait = value }
        batch.finish()
    }
}
