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

/// A loopback port nothing listens on right now (the kernel's pick for port 0). A random port could
/// be another test's listener, which with SO_REUSEPORT binds beside it and answers in its place.
func freeLoopbackPort() -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
    _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
    return Int(UInt16(bigEndian: address.sin_port))
}
