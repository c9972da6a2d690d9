import Foundation

/// Certificates for one test, made with the openssl CLI in `directory` (the Sinks tests cannot
/// reach the gateway's `DevelopmentPKI`): a CA `<name>-ca.pem`, a server certificate it signed for
/// 127.0.0.1 and localhost with its key, and a client certificate (`clientAuth`) with its key.
/// P-256 keys, valid for a day.
struct TestCertificates {
    let ca: String
    let certificate: String
    let key: String
    let clientCertificate: String
    let clientKey: String

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    init(in directory: String, name: String) throws {
        let base = directory + "/" + name
        let (ca, certificate, key) = (base + "-ca.pem", base + ".pem", base + ".key")
        let (clientCertificate, clientKey) = (base + "-client.pem", base + "-client.key")
        try "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n".write(toFile: base + ".ext", atomically: true, encoding: .utf8)
        try "extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n".write(toFile: base + "-client.ext", atomically: true, encoding: .utf8)
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
        func signed(_ csr: String, serial: Int, extensions: String, out: String) -> [String] {
            ["openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", base + "-ca.key", "-set_serial", "\(serial)",
             "-days", "1", "-extfile", extensions, "-out", out]
        }
        var commands: [[String]] = []
        commands.append(["openssl", "req", "-x509"] + ec + ["-days", "1", "-subj", "/CN=\(name) test CA", "-keyout", base + "-ca.key", "-out", ca])
        commands.append(["openssl", "req"] + ec + ["-subj", "/CN=localhost", "-keyout", key, "-out", base + ".csr"])
        commands.append(signed(base + ".csr", serial: 2, extensions: base + ".ext", out: certificate))
        commands.append(["openssl", "req"] + ec + ["-subj", "/CN=\(name) client", "-keyout", clientKey, "-out", base + "-client.csr"])
        commands.append(signed(base + "-client.csr", serial: 3, extensions: base + "-client.ext", out: clientCertificate))
        for command in commands {
            guard try run(command).status == 0 else { throw Failure(description: "failed: \(command.joined(separator: " "))") }
        }
        self.ca = ca
        self.certificate = certificate
        self.key = key
        self.clientCertificate = clientCertificate
        self.clientKey = clientKey
    }
}
