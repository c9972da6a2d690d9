import CZstd

/// The libzstd this build links (through the `CZstd` system-library target).
public enum Zstd {
    /// libzstd's version string, e.g. `1.5.4`.
    public static var version: String { String(cString: ZSTD_versionString()) }

    /// The four bytes every zstd frame starts with (`28 B5 2F FD`, RFC 8878): how a carve that
    /// osquery compressed (`--carver_compression`) is told from a plain tar.
    public static let frameMagic: [UInt8] = [0x28, 0xB5, 0x2F, 0xFD]

    /// Whether `prefix` starts with the zstd frame magic.
    public static func isCompressed(prefix: some Sequence<UInt8>) -> Bool {
        Array(prefix.prefix(4)) == frameMagic
    }
}
