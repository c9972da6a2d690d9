import CZstd

/// The libzstd this build links (through the `CZstd` system-library target).
public enum Zstd {
    /// libzstd's version string, e.g. `1.5.4`.
    public static var version: String { String(cString: ZSTD_versionString()) }
}
