/// One thing wrong with the configuration file, naming the key and, where known, the line.
struct ConfigurationProblem: Sendable, CustomStringConvertible, Equatable {
    var key: String
    var line: Int?
    var message: String

    /// A problem with `key` at its line in `lines`, or else at the line of the nearest section
    /// holding it (`sinks[2].ca` falls back to `sinks[2]`, then `sinks`).
    static func locating(_ key: String, in lines: [String: Int], _ message: String) -> ConfigurationProblem {
        var line = lines[key]
        var parent = key
        while line == nil, let cut = parent.lastIndex(where: { $0 == "." || $0 == "[" }) {
            parent = String(parent[..<cut])
            line = lines[parent]
        }
        return ConfigurationProblem(key: key, line: line, message: message)
    }

    var description: String {
        let place = line.map { "line \($0): " } ?? ""
        return "\(place)\(key.isEmpty ? "(top level)" : key): \(message)"
    }
}

/// The configuration could not be used; lists every problem found, not just the first.
struct ConfigurationError: Error, CustomStringConvertible {
    var file: String?
    var problems: [ConfigurationProblem]

    var description: String {
        let header = file.map { "invalid configuration in \($0):" } ?? "invalid configuration:"
        return ([header] + problems.map { "  - \($0)" }).joined(separator: "\n")
    }
}
