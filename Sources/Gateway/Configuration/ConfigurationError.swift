/// One thing wrong with the configuration file, naming the key and, where known, the line.
struct ConfigurationProblem: Sendable, CustomStringConvertible, Equatable {
    var key: String
    var line: Int?
    var message: String

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
