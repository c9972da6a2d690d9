/// osquery's `platform_type` bitmask (docs/protocol.md#enrollment): POSIX 1, WINDOWS 2, BSD 4,
/// LINUX 8, OSX 16, FREEBSD 32.
///
/// Part of the wire vocabulary, not of one feature: config targeting matches on every name
/// (`NodeFacts`), the ingest step gives each record the primary one (`LogBatch`).
enum OsqueryPlatform {
    private static let bits: [(Int, String)] = [(1, "posix"), (2, "windows"), (4, "bsd"), (8, "linux"), (16, "darwin"), (32, "freebsd")]

    /// Every platform name the bitmask sets (`"21"` → posix, bsd, darwin).
    static func names(platformType: String) -> [String] {
        guard let mask = Int(platformType) else { return [] }
        return bits.filter { mask & $0.0 != 0 }.map(\.1)
    }

    /// The most specific name (`darwin`, `linux`, `windows`, `freebsd`), for routing logs.
    static func primary(platformType: String) -> String? {
        let names = names(platformType: platformType)
        return ["darwin", "freebsd", "linux", "windows"].first(where: names.contains) ?? names.last
    }
}
