import Foundation
@testable import Gateway

/// Certificates for one test, written to a temporary folder: a CA with a server certificate and two
/// client certificates, and a second, unrelated CA with its own client certificate.
struct TestPKI {
    let directory: String
    var caCertificate: String { directory + "/ca.pem" }
    var serverCertificate: String { directory + "/server.pem" }
    var serverKey: String { directory + "/server.key" }
    func client(_ name: String) -> (certificate: String, key: String) {
        (directory + "/\(name).pem", directory + "/\(name).key")
    }

    init(directory: String) throws {
        self.directory = directory
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let pki = try DevelopmentPKI(name: "test CA")
        let server = try pki.issueServer(hostnames: ["localhost", "127.0.0.1"])
        let rogue = try DevelopmentPKI(name: "rogue CA")
        func write(_ name: String, _ text: String) throws {
            try Data(text.utf8).write(to: URL(fileURLWithPath: directory + "/" + name))
        }
        try write("ca.pem", pki.ca.certificatePEM)
        try write("server.pem", server.certificatePEM)
        try write("server.key", server.privateKeyPEM)
        for name in ["agent1", "agent2"] {
            let issued = try pki.issueClient(commonName: name)
            try write("\(name).pem", issued.certificatePEM)
            try write("\(name).key", issued.privateKeyPEM)
        }
        let stranger = try rogue.issueClient(commonName: "agent1")
        try write("rogue.pem", stranger.certificatePEM)
        try write("rogue.key", stranger.privateKeyPEM)
    }
}

/// A fresh temporary folder.
func makeTemporaryDirectory(_ label: String = "gw") -> String {
    let path = NSTemporaryDirectory() + "osquery-gateway-tests/\(label)-\(UUID().uuidString.prefix(8))"
    try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}
