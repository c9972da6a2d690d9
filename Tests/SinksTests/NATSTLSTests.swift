import Foundation
import NIOCore
@testable import Sinks
import Support
import Testing

/// The nats sink over TLS, against a nats-server of each test's own started with `--tls` (and
/// `--tlsverify` where clients must present a certificate), certificates made for the test. NATS
/// upgrades after its plain-text INFO, so these are the checks that the upgrade happens at the
/// right moment, that trust, the server name and client certificates are enforced, and that a sink
/// told to use TLS never falls back to plain text.
@Suite(.enabled(if: ProcessInfo.processInfo.environment["NATS_SERVER"] != nil && FileManager.default.isExecutableFile(atPath: "/usr/bin/openssl"),
                "needs NATS_SERVER (make test starts nats-server) and /usr/bin/openssl"))
struct NATSTLSTests {
    let binary = ProcessInfo.processInfo.environment["NATS_SERVER"] ?? ""

    /// A nats-server with JetStream that requires TLS, on a free port; `verifyClients`: it also
    /// requires a client certificate signed by the test CA.
    func startServer(_ pki: TestCertificates, directory: String, verifyClients: Bool = false) async throws -> (server: ServerProcess, url: String) {
        let port = freePort()
        // A file, for what no flag sets: the handshake deadline, 0.5 s by default, which a
        // handshake on a loaded 2-core machine can miss (the server then closes the connection).
        var tls = ["cert_file: \"\(pki.certificate)\"", "key_file: \"\(pki.key)\"", "timeout: 10"]
        if verifyClients { tls += ["ca_file: \"\(pki.ca)\"", "verify: true"] }
        let file = directory + "/nats.conf"
        try "tls {\n  \(tls.joined(separator: "\n  "))\n}\n".write(toFile: file, atomically: true, encoding: .utf8)
        let arguments = ["-a", "127.0.0.1", "-p", "\(port)", "-js", "-sd", directory + "/store", "-c", file]
        let server = try ServerProcess(binary, arguments)
        #expect(await eventually(timeout: .seconds(10)) { isListening(port) })
        return (server, "nats://127.0.0.1:\(port)")
    }

    func sink(url: String, tls: NATSTLS?, stream: String = "SECURE") throws -> NATSSink {
        var configuration = NATSSink.Configuration(
            name: "bus", address: try #require(NetworkAddress(parsing: url, schemes: ["nats", "tls"], defaultPort: 4222)),
            subject: try NATSSubjectTemplate("secure.{log_type}"))
        configuration.tls = tls
        configuration.stream = stream
        configuration.connectTimeout = .seconds(3)
        configuration.ackTimeout = .seconds(5)
        return try NATSSink(configuration: configuration)
    }

    /// The health check's error, nil when it passed.
    func healthCheckError(_ sink: NATSSink) async -> String? {
        do {
            try await sink.healthCheck()
            return nil
        } catch {
            return "\(error)"
        }
    }

    @Test func recordsArriveOverTLSLineForLine() async throws {
        let directory = temporaryDirectory("nats-tls")
        let pki = try TestCertificates(in: directory, name: "nats")
        let (server, url) = try await startServer(pki, directory: directory)
        defer { server.stop() }
        let bus = try sink(url: url, tls: NATSTLS(ca: pki.ca))
        let batch = (0..<40).map { record($0, node: ["a", "b"][$0 % 2]) }
        #expect(await healthCheckError(bus) == nil)
        #expect(await bus.deliver(batch) == .delivered)
        await bus.close()
        let reader = try await JetStreamReader(url: url, tls: NATSTLS(ca: pki.ca))
        let stored = try await reader.messages("SECURE")
        reader.close()
        #expect(stored.map { $0.payload } == batch.map { String(buffer: $0.json) })
        #expect(stored.map { $0.subject } == Array(repeating: "secure.result", count: 40))
    }

    @Test func anUntrustedCertificateOrAnotherServerNameFailsAndIsRetried() async throws {
        let directory = temporaryDirectory("nats-tls-trust")
        let pki = try TestCertificates(in: directory, name: "nats")
        let other = try TestCertificates(in: directory, name: "other")
        let (server, url) = try await startServer(pki, directory: directory)
        defer { server.stop() }

        let untrusting = try sink(url: url, tls: NATSTLS(ca: other.ca))
        #expect(await healthCheckError(untrusting) != nil)
        guard case .retry = await untrusting.deliver([record(0)]) else {
            Issue.record("a server the CA does not vouch for must be retried")
            return
        }
        await untrusting.close()

        // The certificate is for localhost and 127.0.0.1: a name it does not carry is refused, the
        // name it does carry is accepted though the URL holds the address.
        let misnamed = try sink(url: url, tls: NATSTLS(ca: pki.ca, serverName: "nats.example"))
        let misnamedError = await healthCheckError(misnamed)
        #expect(misnamedError == "the TLS certificate of \(url) does not carry the server name nats.example",
                "\(misnamedError ?? "accepted")")
        await misnamed.close()
        let named = try sink(url: url, tls: NATSTLS(ca: pki.ca, serverName: "localhost"))
        #expect(await healthCheckError(named) == nil)
        #expect(await named.deliver([record(1)]) == .delivered)
        await named.close()
    }

    @Test func aServerVerifyingClientsTakesOnlyASinkWithACertificate() async throws {
        let directory = temporaryDirectory("nats-tls-mutual")
        let pki = try TestCertificates(in: directory, name: "nats")
        let (server, url) = try await startServer(pki, directory: directory, verifyClients: true)
        defer { server.stop() }

        // TLS 1.3: the client's handshake ends before the server judges its certificate, so the
        // refusal comes as an alert on the first read; the connect fails either way.
        let anonymous = try sink(url: url, tls: NATSTLS(ca: pki.ca))
        #expect(await healthCheckError(anonymous) != nil)
        await anonymous.close()

        let certificate = HTTPEndpoint.ClientCertificate(certificate: pki.clientCertificate, privateKey: pki.clientKey)
        let tls = NATSTLS(ca: pki.ca, clientCertificate: certificate)
        let bus = try sink(url: url.replacingOccurrences(of: "nats://", with: "tls://"), tls: tls)
        let batch = (0..<5).map { record($0) }
        #expect(await bus.deliver(batch) == .delivered)
        await bus.close()
        let reader = try await JetStreamReader(url: url, tls: tls)
        #expect(try await reader.messages("SECURE").map { $0.payload } == batch.map { String(buffer: $0.json) })
        reader.close()
    }

    @Test func withoutTLSSettingsTheSinkStillUpgradesWhenTheServerRequiresIt() async throws {
        let directory = temporaryDirectory("nats-tls-required")
        let pki = try TestCertificates(in: directory, name: "nats")
        let (server, url) = try await startServer(pki, directory: directory)
        defer { server.stop() }
        // The system's trust store does not hold the test CA: the upgrade happens, and fails on
        // the certificate (not on a plain-text CONNECT the server would drop).
        let plain = try sink(url: url, tls: nil)
        let error = await healthCheckError(plain)
        #expect(error?.contains("CERTIFICATE_VERIFY_FAILED") == true, "\(error ?? "no error")")
        await plain.close()
    }

    @Test func aSinkInsistingOnTLSRefusesAServerThatOffersNone() async throws {
        let plainURL = try #require(ProcessInfo.processInfo.environment["NATS_URL"])
        let directory = temporaryDirectory("nats-tls-none")
        let pki = try TestCertificates(in: directory, name: "nats")
        let bus = try sink(url: plainURL, tls: NATSTLS(ca: pki.ca))
        let address = try #require(NetworkAddress(parsing: plainURL, schemes: ["nats"], defaultPort: 4222))
        #expect(await healthCheckError(bus) == "\(address) offers no TLS (its INFO has neither tls_required nor tls_available)")
        guard case .retry(let reason, _) = await bus.deliver([record(0)]) else {
            Issue.record("a server without TLS must be retried, never written to in plain text")
            return
        }
        #expect(reason.hasSuffix("offers no TLS (its INFO has neither tls_required nor tls_available)"))
        await bus.close()
    }
}

/// The server-name rule on its own: the name itself, or a wildcard for exactly one first label.
@Suite struct ServerNameMatchTests {
    @Test(arguments: [
        ("nats.example", "nats.example", true), ("*.example", "nats.example", true),
        ("*.example", "a.nats.example", false), ("*.example", "example", false), ("*.example", ".example", false),
        ("other.example", "nats.example", false), ("nats.example", "nats.example.evil", false),
    ])
    func names(pattern: String, name: String, matches: Bool) {
        #expect(ServerNameCheck.matches(pattern, name) == matches)
    }
}
