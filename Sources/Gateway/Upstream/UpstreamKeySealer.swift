#if canImport(Glibc)
import Glibc
#endif
import Crypto
import Foundation
import Support

/// Seals the node keys an upstream backend hands out, so the node store never holds one in plaintext.
///
/// The gateway must keep each node's backend key: it re-posts the node's logs with it long after
/// the agent's request (the upstream sink), and fetches the node's config with it. AES-256-GCM with
/// a random 96-bit nonce per key, `nonce | ciphertext | tag` in the `upstream_key` column, and a fixed
/// associated text that ties the box to this purpose. The key lives in `data_dir/upstream.key`
/// (64 hex digits, mode 0600), written at the first start in upstream mode: a stolen database
/// without that file holds no usable backend key. Losing the file loses the sealed keys (nodes then
/// log locally only until they enroll again); back it up with the database.
struct UpstreamKeySealer: Sendable {
    private let key: SymmetricKey
    private static let purpose = Array("osquery-gateway upstream node key v1".utf8)

    init(key: SymmetricKey) {
        self.key = key
    }

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    /// Reads the key file, or creates it (0600, never overwriting one that appeared meanwhile).
    /// - Throws: `Failure` when the file cannot be read or written, or does not hold 64 hex digits.
    static func loadOrCreate(path: String) throws -> UpstreamKeySealer {
        if let data = FileManager.default.contents(atPath: path) {
            let text = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            guard let bytes = Hex.decode(text), bytes.count == 32 else {
                throw Failure(description: "\(path) must hold 64 hex digits (the upstream sealing key)")
            }
            return UpstreamKeySealer(key: SymmetricKey(data: bytes))
        }
        let key = SymmetricKey(size: .bits256)
        let text = key.withUnsafeBytes { Hex.encode($0) } + "\n"
        try FileManager.default.createDirectory(
            atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true,
            attributes: [.posixPermissions: 0o700])
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            // Another process wrote it first: use that one.
            if errno == EEXIST { return try loadOrCreate(path: path) }
            throw Failure(description: "cannot create \(path): errno \(errno)")
        }
        defer { _ = close(fd) }
        let bytes = Array(text.utf8)
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard written == bytes.count, fsync(fd) == 0 else {
            _ = unlink(path)
            throw Failure(description: "cannot write \(path)")
        }
        return UpstreamKeySealer(key: key)
    }

    /// `nodeKey` sealed.
    func seal(_ nodeKey: String) throws -> [UInt8] {
        let box = try AES.GCM.seal(Array(nodeKey.utf8), using: key, authenticating: Self.purpose)
        guard let combined = box.combined else { throw Failure(description: "AES-GCM produced no combined box") }
        return Array(combined)
    }

    /// The key in `sealed`.
    /// - Throws: when the box was not sealed with this key (another `upstream.key`) or is damaged.
    func unseal(_ sealed: [UInt8]) throws -> String {
        let box = try AES.GCM.SealedBox(combined: sealed)
        let plain = try AES.GCM.open(box, using: key, authenticating: Self.purpose)
        return String(decoding: plain, as: UTF8.self)
    }
}
