/// Shell-style globs, the one pattern language of the configuration: sink routing by query name,
/// config targeting by host identifier and certificate name. `*` matches any run of bytes, `?` one
/// byte; everything else matches itself. No character classes, so a pattern never needs escaping
/// rules an operator would have to learn.
public enum Glob {
    /// Whether `text` matches `pattern` as a whole (not a substring of it).
    ///
    /// Linear in practice: on a mismatch after a `*`, matching resumes one byte later from the last
    /// star instead of backtracking over every earlier one.
    public static func matches(_ pattern: String, _ text: String) -> Bool {
        let p = Array(pattern.utf8), t = Array(text.utf8)
        var pi = 0, ti = 0, star = -1, mark = 0
        while ti < t.count {
            if pi < p.count && (p[pi] == UInt8(ascii: "?") || p[pi] == t[ti]) {
                pi += 1
                ti += 1
            } else if pi < p.count && p[pi] == UInt8(ascii: "*") {
                star = pi
                mark = ti
                pi += 1
            } else if star >= 0 {
                pi = star + 1
                mark += 1
                ti = mark
            } else {
                return false
            }
        }
        while pi < p.count && p[pi] == UInt8(ascii: "*") { pi += 1 }
        return pi == p.count
    }
}
