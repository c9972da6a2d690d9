import Foundation
import GRDB

extension DatabasePool {
    /// Opens or creates one of the gateway's SQLite files (the node store, the campaigns) in WAL
    /// mode, the same way for each: the folder is created private (0700) when missing, the file is
    /// readable by the gateway's user only (0600), and a writer waits up to 5 seconds for another's
    /// lock rather than failing at once.
    static func gatewayFile(at path: String) throws -> DatabasePool {
        try FileManager.default.createDirectory(
            atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true,
            attributes: [.posixPermissions: 0o700])
        var configuration = GRDB.Configuration()
        configuration.busyMode = .timeout(5)
        let pool = try DatabasePool(path: path, configuration: configuration)
        chmod(path, 0o600)
        return pool
    }
}
