import Foundation

/// The osqueryd flags that point an agent at this gateway (README "Quick start"; docs/protocol.md#enrollment).
struct AgentFlags {
    let configuration: GatewayConfiguration
    /// Host name agents use; must match the server certificate. Defaults from `listen`.
    var hostname: String?
    /// The port agents connect to, when it differs from `listen` (port 0 resolved at bind).
    var port: Int?

    /// The name agents put in `--tls_hostname`: the one asked for, else one the listen address
    /// suggests if the server certificate covers it, else the certificate's first DNS name (so the
    /// flags `init --hostname gw.test` prints pass hostname verification).
    var host: String {
        if let hostname { return hostname }
        let listen = configuration.listen.host
        let suggested: String
        if ["127.0.0.1", "::1", "localhost"].contains(listen) {
            suggested = "localhost"
        } else if ["0.0.0.0", "::"].contains(listen) {
            suggested = ProcessInfo.processInfo.hostName
        } else {
            suggested = listen
        }
        let names = CertificateNames(file: configuration.tls.certificate)
        if names.isEmpty || names.covers(suggested) { return suggested }
        return names.dnsNames.first { !$0.hasPrefix("*") } ?? suggested
    }

    /// A warning when the server certificate does not cover `host` (agents would fail verification).
    var hostnameWarning: String? {
        let names = CertificateNames(file: configuration.tls.certificate)
        guard !names.isEmpty, !names.covers(host) else { return nil }
        return "warning: the server certificate \(configuration.tls.certificate) does not cover \(host) "
            + "(it names \((names.dnsNames + names.addresses).joined(separator: ", "))); agents will fail hostname verification"
    }

    var lines: [String] {
        let endpoints = configuration.endpoints
        let host = self.host
        var flags = [
            "--tls_hostname=\(host):\(port ?? configuration.listen.port)",
            "--tls_server_certs=\(serverCABundle)",
        ]
        switch configuration.enrollment.secrets.first?.source {
        case .file(let path): flags.append("--enroll_secret_path=\(path)")
        case .environment(let name): flags.append("--enroll_secret_env=\(name)")
        case nil: flags.append("--disable_enrollment=true")
        }
        if configuration.enrollment.secretField != "enroll_secret" {
            flags.append("--tls_enroll_override=\(configuration.enrollment.secretField)")
        }
        flags += [
            "--enroll_tls_endpoint=\(endpoints.enroll)",
            "--config_plugin=tls",
            "--config_tls_endpoint=\(endpoints.config)",
            "--config_refresh=300",
            "--logger_plugin=tls",
            "--logger_tls_endpoint=\(endpoints.logger)",
            "--logger_tls_compress=true",
            "--distributed_plugin=tls",
            "--disable_distributed=false",
            "--distributed_tls_read_endpoint=\(endpoints.distributedRead)",
            "--distributed_tls_write_endpoint=\(endpoints.distributedWrite)",
            "--disable_carver=false",
            "--carver_start_endpoint=\(endpoints.carveStart)",
            "--carver_continue_endpoint=\(endpoints.carveBlock)",
            "--carver_compression=true",
            "--carver_block_size=\(carverBlockSize)",
        ]
        if configuration.tls.clientCertificates != .none, let client = developmentClientPair {
            flags += ["--tls_client_cert=\(client.certificate)", "--tls_client_key=\(client.key)"]
        }
        return flags
    }

    /// Blocks of 1 MiB (osquery's 8 KiB default means 131k requests, each a new TLS connection, for
    /// 1 GiB), or the largest block the gateway takes when that is less (`carves.max_block_size`,
    /// and a base64 body within `limits.max_body`).
    private var carverBlockSize: Int {
        let fitsBody = max(8192, (configuration.limits.maxBody - 512) / 4 * 3)
        return min(1 << 20, configuration.carves.maxBlockSize, fitsBody)
    }

    /// The CA bundle agents should trust: `ca.pem` beside the server certificate (what `init` writes),
    /// else the certificate file itself (enough for a self-signed or full-chain file).
    private var serverCABundle: String {
        let folder = (configuration.tls.certificate as NSString).deletingLastPathComponent
        let ca = folder + "/ca.pem"
        return FileManager.default.fileExists(atPath: ca) ? ca : configuration.tls.certificate
    }

    private var developmentClientPair: (certificate: String, key: String)? {
        let folder = (configuration.tls.certificate as NSString).deletingLastPathComponent
        let pair = (folder + "/client.pem", folder + "/client.key")
        return FileManager.default.fileExists(atPath: pair.0) ? pair : nil
    }
}
