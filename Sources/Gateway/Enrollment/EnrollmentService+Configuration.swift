extension EnrollmentService {
    /// The `enrollment` section: which secrets are accepted and whether a certificate alone will do.
    struct Configuration: Sendable {
        /// One accepted enroll secret. Its `name` is recorded with every node that used it.
        struct Secret: Sendable, Equatable {
            enum Source: Sendable, Equatable {
                /// Read from a file and trimmed, as osquery's `--enroll_secret_path`.
                case file(String)
                /// Read from an environment variable as is, as osquery's `--enroll_secret_env`.
                case environment(String)
            }
            var name: String
            var source: Source
            /// Labels given to nodes that enroll with this secret (config targeting matches them).
            var tags: [String] = []
        }

        var secrets: [Secret] = []
        /// Body key and URL parameter that hold the secret (osquery `--tls_enroll_override`).
        var secretField = "enroll_secret"
        /// A verified client certificate alone may enroll.
        var clientCertificate = false
    }
}

extension EnrollmentService.Configuration {
    /// `enrollment`: `secrets` (each `name`, one of `file` or `env`, optional `tags`),
    /// `secret_field`, `client_certificate`.
    init(reading section: MappingReader) {
        self.init()
        let reader = section.reader
        var names = Set<String>()
        secrets = section.entries("secrets") { entry, _ in
            let name = entry.requiredString("name")
            let file = entry.configPath("file")
            let env = entry.string("env")
            let tags = entry.strings("tags")
            guard let name else { return nil }
            if !names.insert(name).inserted { reader.report(entry.key("name"), entry.node, "secret name \(name) is used twice") }
            switch (file, env) {
            case (let file?, nil): return Secret(name: name, source: .file(file), tags: tags)
            case (nil, let env?): return Secret(name: name, source: .environment(env), tags: tags)
            default:
                reader.report(entry.path, entry.node, "give exactly one of file or env")
                return nil
            }
        }
        if let field = section.string("secret_field") {
            if field.isEmpty || field.contains(where: { "&=?# ".contains($0) }) {
                reader.report(section.key("secret_field"), section.value("secret_field"), "must be a plain field name")
            } else {
                secretField = field
            }
        }
        clientCertificate = section.bool("client_certificate") ?? false
    }
}
