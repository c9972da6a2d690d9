import Foundation

/// The SQL of a carve campaign: osquery carves the files a query on its `carves` table names by
/// `path` when the query also says `carve = 1` (docs/protocol.md#carving).
enum CarveRequestSQL {
    /// `SELECT * FROM carves WHERE path = '<path>' AND carve = 1;`, the path an SQL string literal.
    /// `=` and not `LIKE`, so `%` and `_` in a file name are not wildcards.
    static func select(path: String) -> String {
        "SELECT * FROM carves WHERE path = \(literal(path)) AND carve = 1;"
    }

    /// `text` as an SQLite string literal: in single quotes, each `'` doubled (the only character
    /// SQLite gives a meaning to inside one).
    static func literal(_ text: String) -> String {
        "'" + text.replacingOccurrences(of: "'", with: "''") + "'"
    }
}
