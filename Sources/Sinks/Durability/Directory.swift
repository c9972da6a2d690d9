#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Folders every writer here needs: created before the first file goes in, and synced after a file
/// is created, renamed or deleted in them (an fsync of the file alone does not make its name durable).
enum Directory {
    /// Creates `path` and every missing parent, mode 0700; an existing folder is fine.
    /// - Throws: `SinkError.io` naming the folder that could not be created.
    static func make(_ path: String) throws {
        var current = path.hasPrefix("/") ? "" : "."
        for component in path.split(separator: "/") {
            current += "/" + component
            if mkdir(current, 0o700) != 0 && errno != EEXIST {
                throw SinkError.io("cannot create \(current): \(String(cString: strerror(errno)))")
            }
        }
    }

    /// Makes the entries of folder `path` durable.
    /// - Throws: `SinkError.io` when the folder cannot be opened or synced.
    static func sync(_ path: String) throws {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw SinkError.io("cannot open folder \(path)") }
        defer { _ = close(fd) }
        if fsync(fd) != 0 { throw SinkError.io("fsync of folder \(path) failed") }
    }
}
