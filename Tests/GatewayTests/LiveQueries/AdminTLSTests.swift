import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import NIOSSL
import Support
import Testing
@testable import Gateway

/// The admin listener over HTTPS (`admin.tls`, issue 11 item 1): the bearer token over TLS, a
/// client certificate from `admin.tls.client_ca` instead of it, and what is refused, with exact
/// JSON bodies; and the CLI's `AdminClient` talking to it.
@Suite struct AdminTLSTests {
    /// A live-query gateway whose admin listener serves HTTPS with the test PKI's server
    /// certificate, takes certificates from the test CA, and allows the name `agent1` only.
    static func gateway(token: Bool = true) throws -> LiveQueryGateway {
        let live = try LiveQueryGateway()
        let pki = live.gateway.pki
        live.gateway.configuration.admin?.tls = AdminTLS.Configuration(
            certificate: pki.serverCertificate, privateKey: pki.serverKey, clientCA: pki.caCertificate, clientNames: ["agent1"])
        if !token { live.gateway.configuration.admin?.token = nil }
        return live
    }

    static func withGateway(token: Bool = true, _ body: (LiveQueryGateway) async throws -> Void) async throws {
        let live = try gateway(token: token)
        try await live.gateway.start()
        do {
            try await body(live)
        } catch {
            try? await live.gateway.stop()
            try? await live.shutdown()
            throw error
        }
        try await live.gateway.stop()
        try await live.shutdown()
    }

    /// `GET path` over HTTPS trusting the test CA, with the bearer token and client certificate given.
    static func get(_ live: LiveQueryGateway, _ path: String, token: String? = nil, client: String? = nil) async throws -> (status: Int, body: String) {
        let pki = live.gateway.pki
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(pki.caCertificate))
        if let client {
            let pair = pki.client(client)
            tls.certificateChain = try NIOSSLCertificate.fromPEMFile(pair.certificate).map { .certificate($0) }
            tls.privateKey = .privateKey(try NIOSSLPrivateKey(file: pair.key, format: .pem))
        }
        var configuration = HTTPClient.Configuration(tlsConfiguration: tls)
        configuration.connectionPool.retryConnectionEstablishment = false
        let http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        do {
            var request = HTTPClientRequest(url: "https://127.0.0.1:\(live.adminPort)\(path)")
            if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
            let response = try await http.execute(request, timeout: .seconds(10))
            let body = String(buffer: try await response.body.collect(upTo: 1 << 20))
            try await http.shutdown()
            return (Int(response.status.code), body)
        } catch {
            try? await http.shutdown()
            throw error
        }
    }

    @Test func theTokenWorksOverTLS() async throws {
        try await Self.withGateway { live in
            let listed = try await Self.get(live, "/api/nodes", token: live.token)
            #expect(listed.status == 200)
            #expect(listed.body == #"{"nodes":[]}"#)
            #expect(try await Self.get(live, "/health").status == 200)
            let wrong = try await Self.get(live, "/api/nodes", token: "not-the-token-at-all")
            #expect(wrong.status == 401)
            #expect(wrong.body == #"{"error":"missing or wrong bearer token, and no admin client certificate"}"#)
        }
    }

    @Test func aClientCertificateFromTheAdminCAIsACredential() async throws {
        try await Self.withGateway(token: false) { live in
            let listed = try await Self.get(live, "/api/nodes", client: "agent1")
            #expect(listed.status == 200)
            #expect(listed.body == #"{"nodes":[]}"#)
            // Whatever token comes with it.
            #expect(try await Self.get(live, "/api/queries", token: "not-the-token-at-all", client: "agent1").body == #"{"queries":[]}"#)
        }
    }

    @Test func aCertificateOutsideClientNamesIsRefused() async throws {
        try await Self.withGateway { live in
            let refused = try await Self.get(live, "/api/nodes", client: "agent2")
            #expect(refused.status == 403)
            #expect(refused.body == #"{"error":"client certificate agent2 is not allowed by admin.tls.client_names"}"#)
            // The token still opens the door on that connection.
            #expect(try await Self.get(live, "/api/nodes", token: live.token, client: "agent2").status == 200)
        }
    }

    @Test func aCertificateFromAnotherCAFailsTheHandshake() async throws {
        try await Self.withGateway { live in
            await #expect(throws: (any Error).self) { _ = try await Self.get(live, "/api/nodes", token: live.token, client: "rogue") }
        }
    }

    @Test func noCredentialsAreRefused() async throws {
        try await Self.withGateway(token: false) { live in
            let refused = try await Self.get(live, "/api/nodes")
            #expect(refused.status == 401)
            #expect(refused.body == #"{"error":"missing or wrong bearer token, and no admin client certificate"}"#)
        }
    }

    @Test func theCLIClientUsesTheConfiguredCAAndClientCertificate() async throws {
        try await Self.withGateway(token: false) { live in
            let pki = live.gateway.pki
            var configuration = live.gateway.configuration
            // No CA: the system's store does not know the test CA.
            configuration.admin?.client = AdminClient.Configuration(
                ca: nil, clientCertificate: .init(certificate: pki.client("agent1").certificate, privateKey: pki.client("agent1").key))
            await #expect(throws: CommandFailure.self) { _ = try await AdminClient(configuration: configuration).call(.GET, "/api/nodes") }
            configuration.admin?.client.ca = pki.caCertificate
            let client = try AdminClient(configuration: configuration)
            #expect(client.baseURL == "https://127.0.0.1:\(live.adminPort)")
            #expect(client.token == nil)
            #expect(JSONValue.object(try await client.call(.GET, "/api/nodes")).line == #"{"nodes":[]}"#)
            // A name the certificate holds, connected to through the listen address.
            configuration.admin?.client.serverName = "localhost"
            let named = try AdminClient(configuration: configuration)
            #expect(named.baseURL == "https://localhost:\(live.adminPort)")
            #expect(JSONValue.object(try await named.call(.GET, "/api/queries")).line == #"{"queries":[]}"#)
        }
    }

    @Test func theCLIClientSendsTheTokenOverTLS() async throws {
        try await Self.withGateway { live in
            var configuration = live.gateway.configuration
            configuration.admin?.client = AdminClient.Configuration(ca: live.gateway.pki.caCertificate)
            let client = try AdminClient(configuration: configuration)
            #expect(client.token == live.token)
            #expect(JSONValue.object(try await client.call(.GET, "/api/nodes")).line == #"{"nodes":[]}"#)
        }
    }

    @Test func adminTLSIsReadFromTheConfiguration() throws {
        let yaml = minimalConfigurationYAML + """
            admin:
              listen: 127.0.0.1:9443
              tls: { certificate: tls/admin.pem, private_key: tls/admin.key, client_ca: tls/ops-ca.pem, client_names: [ops-*, "*.ops"] }
              client: { ca: tls/ca.pem, client_certificate: tls/ops.pem, client_key: tls/ops.key, server_name: gw.internal }

            """
        let admin = try #require(try GatewayConfiguration.parse(yaml: yaml, baseDirectory: "/etc/gw", environment: [:]).admin)
        #expect(admin.tls == AdminTLS.Configuration(
            certificate: "/etc/gw/tls/admin.pem", privateKey: "/etc/gw/tls/admin.key", clientCA: "/etc/gw/tls/ops-ca.pem",
            clientNames: ["ops-*", "*.ops"]))
        #expect(admin.client == AdminClient.Configuration(
            ca: "/etc/gw/tls/ca.pem", clientCertificate: .init(certificate: "/etc/gw/tls/ops.pem", privateKey: "/etc/gw/tls/ops.key"),
            serverName: "gw.internal"))
        let problems = try configurationProblems(minimalConfigurationYAML + """
            admin:
              listen: 127.0.0.1:9443
              tls: { certificate: tls/admin.pem, private_key: tls/admin.key, client_names: [ops-*] }

            """)
        #expect(problems.contains { $0.contains("admin.tls.client_names") && $0.contains("needs admin.tls.client_ca") }, "\(problems)")
    }
}
