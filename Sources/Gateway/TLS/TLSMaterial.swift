import Foundation
import NIOSSL
import SwiftASN1
import X509

/// Loads the server's certificate chain, private key and client CA the way `serve` uses them, and
/// checks what BoringSSL would only find out at the first handshake: that the key belongs to the
/// certificate. A mismatch would otherwise start a server on which every handshake fails.
enum TLSMaterial {
    /// - Parameters:
    ///   - prefix: the section the files were read from (`tls`, `admin.tls`), for the problems' keys.
    ///   - problem: makes a problem for a key, naming its line in the file.
    /// - Throws: `ConfigurationError` naming the key and the file of each problem.
    static func check(
        _ tls: AgentTLS.Configuration, file: String?, at prefix: String = "tls", problem: (String, String) -> ConfigurationProblem
    ) throws {
        var problems: [ConfigurationProblem] = []
        var leaf: Certificate?
        do {
            let chain = try NIOSSLCertificate.fromPEMFile(tls.certificate)
            if let first = chain.first { leaf = try? Certificate(derEncoded: try first.toDERBytes()) }
            if chain.isEmpty { problems.append(problem("\(prefix).certificate", "\(tls.certificate) holds no PEM certificate")) }
        } catch {
            problems.append(problem("\(prefix).certificate", "\(tls.certificate) is not a PEM certificate (\(error))"))
        }
        do {
            _ = try NIOSSLPrivateKey(file: tls.privateKey, format: .pem)
            if let leaf, let text = try? String(contentsOfFile: tls.privateKey, encoding: .utf8),
                let key = try? Certificate.PrivateKey(pemEncoded: text), key.publicKey != leaf.publicKey
            {
                problems.append(problem(
                    "\(prefix).private_key", "\(tls.privateKey) does not belong to the certificate in \(tls.certificate)"))
            }
        } catch {
            problems.append(problem("\(prefix).private_key", "\(tls.privateKey) is not a PEM private key (\(error))"))
        }
        if let ca = tls.clientCA {
            do {
                if try NIOSSLCertificate.fromPEMFile(ca).isEmpty {
                    problems.append(problem("\(prefix).client_ca", "\(ca) holds no PEM certificate"))
                }
            } catch {
                problems.append(problem("\(prefix).client_ca", "\(ca) is not a PEM certificate bundle (\(error))"))
            }
        }
        if !problems.isEmpty { throw ConfigurationError(file: file, problems: problems) }
    }
}
