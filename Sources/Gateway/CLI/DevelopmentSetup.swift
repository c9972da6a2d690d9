import Crypto
import Foundation

/// Writes what a first start needs: a development PKI, an enroll secret, a base osquery config, a
/// `gateway.yaml` using them and the agent flags. Existing files are never overwritten.
enum DevelopmentSetup {
    /// Files `init` writes, relative to its folder.
    enum Layout {
        static let caCertificate = "tls/ca.pem"
        static let caKey = "tls/ca.key"
        static let serverCertificate = "tls/server.pem"
        static let serverKey = "tls/server.key"
        static let clientCertificate = "tls/client.pem"
        static let clientKey = "tls/client.key"
        static let enrollSecret = "enroll_secret.txt"
        static let osqueryConfig = "osquery.conf"
        static let gatewayConfig = "gateway.yaml"
        static let agentFlags = "osquery.flags"
        /// The admin API's bearer token (`admin.token_file`), 0600.
        static let adminToken = "admin_token.txt"
    }

    /// Creates the folder's files that are missing; returns the paths written.
    @discardableResult
    static func initialize(directory: String, hostnames: [String], listen: String) throws -> [String] {
        let fm = FileManager.default
        try fm.createDirectory(atPath: directory + "/tls", withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        var written: [String] = []
        func write(_ name: String, _ text: String, mode: Int = 0o600) throws {
            let path = directory + "/" + name
            guard !fm.fileExists(atPath: path) else { return }
            try Data(text.utf8).write(to: URL(fileURLWithPath: path), options: .atomic)
            try fm.setAttributes([.posixPermissions: mode], ofItemAtPath: path)
            written.append(path)
        }
        if !fm.fileExists(atPath: directory + "/" + Layout.serverCertificate) {
            let pki = try DevelopmentPKI()
            let server = try pki.issueServer(hostnames: hostnames)
            let client = try pki.issueClient(commonName: "osquery-development-client")
            try write(Layout.caCertificate, pki.ca.certificatePEM, mode: 0o644)
            try write(Layout.caKey, pki.ca.privateKeyPEM)
            try write(Layout.serverCertificate, server.certificatePEM, mode: 0o644)
            try write(Layout.serverKey, server.privateKeyPEM)
            try write(Layout.clientCertificate, client.certificatePEM, mode: 0o644)
            try write(Layout.clientKey, client.privateKeyPEM)
        }
        try write(Layout.enrollSecret, NodeKey.generate() + "\n")
        try write(Layout.adminToken, NodeKey.generate() + "\n")
        try write(Layout.osqueryConfig, baseOsqueryConfig, mode: 0o644)
        try write(Layout.gatewayConfig, gatewayYAML(listen: listen), mode: 0o644)
        let configuration = try GatewayConfiguration.load(file: directory + "/" + Layout.gatewayConfig)
        try write(Layout.agentFlags, AgentFlags(configuration: configuration).lines.joined(separator: "\n") + "\n", mode: 0o644)
        return written
    }

    static func gatewayYAML(listen: String) -> String {
        // The admin listener (metrics, health) stays on loopback, on the port after the agents' one.
        let port = ListenAddress(parsing: listen)?.port ?? 8443
        let admin = "127.0.0.1:\(port == 0 ? 0 : port + 1)"
        return """
        # Development configuration written by `osquery-gateway init`.
        # Every key is documented in Config/gateway.example.yaml. Paths are relative to this file.
        development: true
        listen: \(listen)
        data_dir: .
        tls:
          certificate: \(Layout.serverCertificate)
          private_key: \(Layout.serverKey)
          client_ca: \(Layout.caCertificate)
          client_certificates: optional
        enrollment:
          secrets:
            - { name: default, file: \(Layout.enrollSecret) }
          secret_field: enroll_secret
          client_certificate: false
        node_store:
          sqlite: nodes.sqlite
        agent_config:
          sources:
            - { name: base, file: \(Layout.osqueryConfig) }
        sinks:
          - { name: files, type: file, directory: logs }
        admin:
          listen: \(admin)   # GET /metrics (Prometheus), /health and the admin API (/api/), plain HTTP
          token_file: \(Layout.adminToken)   # the admin API's bearer token (osquery-gateway nodes, query)

        """
    }

    static let baseOsqueryConfig = """
        {
          "options": {
            "host_identifier": "hostname",
            "schedule_splay_percent": 10,
            "logger_tls_period": 10,
            "disable_distributed": false,
            "distributed_interval": 60
          },
          "schedule": {
            "osquery_info": {
              "query": "SELECT version, build_platform, build_distro, start_time FROM osquery_info;",
              "interval": 3600
            },
            "system_info": {
              "query": "SELECT hostname, cpu_brand, physical_memory, hardware_vendor, hardware_model FROM system_info;",
              "interval": 86400,
              "snapshot": true
            }
          }
        }

        """
}
