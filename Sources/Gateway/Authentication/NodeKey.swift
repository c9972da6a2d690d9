import Crypto
import Support

/// Node keys: 256 random bits handed to the agent once, stored only as their SHA-256.
///
/// A stolen database therefore holds no usable key. Lookups go by hash (an index over hashes of
/// random values leaks nothing useful through timing), and the hash found is compared again in
/// constant time.
enum NodeKey {
    /// A fresh key: 64 lower-case hex digits.
    static func generate() -> String {
        SymmetricKey(size: .bits256).withUnsafeBytes { Hex.encode($0) }
    }

    /// The value stored for `key`.
    static func hash(_ key: String) -> [UInt8] {
        Array(SHA256.hash(data: Array(key.utf8)))
    }
}
