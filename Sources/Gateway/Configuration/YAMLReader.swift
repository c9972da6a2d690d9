import Foundation
import Yams

/// Reads a YAML tree for the configuration loader, collecting problems instead of stopping at the first.
///
/// Every read names its dotted key path; `MappingReader.finish()` reports keys nobody asked for, so a
/// typo is an error rather than a silently ignored setting. `${NAME}` in a scalar is replaced by the
/// environment variable `NAME`.
final class YAMLReader {
    private(set) var problems: [ConfigurationProblem] = []
    /// The line of every key read, so checks made after parsing (files, certificates, secrets) can
    /// still name the line.
    var lines: [String: Int] = [:]
    let environment: [String: String]
    /// The configuration file's folder: relative paths of files the operator provides resolve here.
    let baseDirectory: String
    /// `data_dir`: relative paths of what the gateway writes (node store, spool, sink folders) resolve here.
    var dataDirectory: String

    init(environment: [String: String] = ProcessInfo.processInfo.environment, baseDirectory: String = "/") {
        self.environment = environment
        self.baseDirectory = PathResolver.absolute(baseDirectory, base: FileManager.default.currentDirectoryPath)
        self.dataDirectory = PathResolver.absolute("data", base: self.baseDirectory)
    }

    /// `path` as an absolute path in the configuration file's folder.
    func inConfigDir(_ path: String) -> String { PathResolver.absolute(path, base: baseDirectory) }
    /// `path` as an absolute path in `data_dir`.
    func inDataDir(_ path: String) -> String { PathResolver.absolute(path, base: dataDirectory) }

    func report(_ key: String, _ node: Node?, _ message: String) {
        problems.append(ConfigurationProblem(key: key, line: node?.mark?.line, message: message))
    }

    /// A problem found once its section was read: at the line recorded for `key` or its section.
    func report(_ key: String, _ message: String) {
        problems.append(.locating(key, in: lines, message))
    }

    /// A scalar's text with `${NAME}` references expanded.
    func scalar(_ node: Node, key: String) -> String? {
        guard case .scalar(let scalar) = node else {
            report(key, node, "expected a single value, found a \(node.kindName)")
            return nil
        }
        return expand(scalar.string, key: key, node: node)
    }

    private func expand(_ text: String, key: String, node: Node) -> String {
        guard text.contains("${") else { return text }
        var result = ""
        var rest = Substring(text)
        while let open = rest.range(of: "${") {
            result += rest[..<open.lowerBound]
            guard let close = rest[open.upperBound...].firstIndex(of: "}") else {
                report(key, node, "unterminated ${ in value")
                return text
            }
            let name = String(rest[open.upperBound..<close])
            if let value = environment[name] {
                result += value
            } else {
                report(key, node, "environment variable \(name) is not set")
            }
            rest = rest[rest.index(after: close)...]
        }
        return result + rest
    }

    func mapping(_ node: Node, key: String) -> MappingReader? {
        guard case .mapping(let mapping) = node else {
            report(key, node, "expected a mapping (key: value pairs), found a \(node.kindName)")
            return nil
        }
        return MappingReader(mapping: mapping, node: node, path: key, reader: self)
    }

    func sequence(_ node: Node, key: String) -> [Node]? {
        guard case .sequence(let sequence) = node else {
            report(key, node, "expected a list, found a \(node.kindName)")
            return nil
        }
        return Array(sequence)
    }
}

/// One YAML mapping being read; remembers which keys were used.
final class MappingReader {
    let node: Node
    let path: String
    let reader: YAMLReader
    private var entries: [(key: String, keyNode: Node, value: Node)] = []
    private var used = Set<String>()

    init(mapping: Node.Mapping, node: Node, path: String, reader: YAMLReader) {
        self.node = node
        self.path = path
        self.reader = reader
        var seen = Set<String>()
        for (keyNode, value) in mapping {
            let key = keyNode.string ?? ""
            if !seen.insert(key).inserted {
                reader.report(self.key(key), keyNode, "key appears twice")
            }
            entries.append((key, keyNode, value))
        }
    }

    func key(_ name: String) -> String { path.isEmpty ? name : "\(path).\(name)" }

    /// The keys present, in file order.
    var keys: [String] { entries.map(\.key) }

    func value(_ name: String) -> Node? {
        used.insert(name)
        guard let entry = entries.first(where: { $0.key == name }) else { return nil }
        if let line = entry.keyNode.mark?.line { reader.lines[key(name)] = line }
        return entry.value
    }

    var line: Int? { node.mark?.line }

    func string(_ name: String) -> String? {
        guard let node = value(name) else { return nil }
        if case .scalar(let scalar) = node, scalar.tag.description.hasSuffix("null") || scalar.string == "~" {
            return nil
        }
        return reader.scalar(node, key: key(name))
    }

    func requiredString(_ name: String) -> String? {
        guard let text = string(name), !text.isEmpty else {
            reader.report(key(name), value(name) ?? node, "is required")
            return nil
        }
        return text
    }

    func bool(_ name: String) -> Bool? {
        guard let text = string(name) else { return nil }
        switch text.lowercased() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default:
            reader.report(key(name), value(name), "expected true or false, found \"\(text)\"")
            return nil
        }
    }

    func integer(_ name: String, in range: ClosedRange<Int>) -> Int? {
        guard let text = string(name) else { return nil }
        guard let number = Int(text), range.contains(number) else {
            reader.report(key(name), value(name), "expected a whole number from \(range.lowerBound) to \(range.upperBound), found \"\(text)\"")
            return nil
        }
        return number
    }

    func choice<T: RawRepresentable & CaseIterable>(_ name: String, _ type: T.Type) -> T? where T.RawValue == String {
        guard let text = string(name) else { return nil }
        guard let value = T(rawValue: text) else {
            let options = T.allCases.map(\.rawValue).joined(separator: ", ")
            reader.report(key(name), value(name), "expected one of \(options), found \"\(text)\"")
            return nil
        }
        return value
    }

    /// A share such as `80%` (or `0.8`), from 1% to 100%, as a fraction.
    func percentage(_ name: String) -> Double? {
        guard let text = string(name) else { return nil }
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        let fraction = trimmed.hasSuffix("%") ? Double(trimmed.dropLast()).map { $0 / 100 } : Double(trimmed)
        guard let fraction, fraction >= 0.01, fraction <= 1 else {
            reader.report(key(name), value(name), "expected a share from 1% to 100%, such as 80%, found \"\(text)\"")
            return nil
        }
        return fraction
    }

    /// A size such as `512KiB`, `64MiB`, `1GiB`, `10MB` or a plain byte count, at least `minimum`.
    func size(_ name: String, minimum: Int = 0) -> Int? {
        measure(name, ByteSize.parse, expected: "a size such as 64MiB or 1GiB", minimum: minimum, shown: "\(minimum) bytes")
    }

    /// A duration such as `250ms`, `30s`, `5m`, `1h` or `1d`, at least `minimum`.
    func duration(_ name: String, minimum: Duration = .zero) -> Duration? {
        measure(name, DurationText.parse, expected: "a duration such as 30s, 5m or 1h", minimum: minimum, shown: "\(minimum)")
    }

    /// A quantity `parse` reads from the text of `name`, at least `minimum`.
    private func measure<T: Comparable>(_ name: String, _ parse: (String) -> T?, expected: String, minimum: T, shown: String) -> T? {
        guard let text = string(name) else { return nil }
        guard let parsed = parse(text) else {
            reader.report(key(name), value(name), "expected \(expected), found \"\(text)\"")
            return nil
        }
        guard parsed >= minimum else {
            reader.report(key(name), value(name), "must be at least \(shown), found \"\(text)\"")
            return nil
        }
        return parsed
    }

    /// A file the operator provides, resolved against the configuration file's folder.
    func configPath(_ name: String) -> String? { string(name).map(reader.inConfigDir) }

    /// A folder or file the gateway writes, resolved against `data_dir`.
    func dataPath(_ name: String) -> String? { string(name).map(reader.inDataDir) }

    /// A single string or a list of strings.
    func strings(_ name: String) -> [String] {
        guard let node = value(name) else { return [] }
        if case .sequence = node {
            return (reader.sequence(node, key: key(name)) ?? []).enumerated().compactMap { reader.scalar($1, key: key("\(name)[\($0)]")) }
        }
        return reader.scalar(node, key: key(name)).map { [$0] } ?? []
    }

    /// Reads the mapping `name` with `read` and reports its unknown keys; nil when it is absent.
    func section<T>(_ name: String, _ read: (MappingReader) -> T) -> T? {
        guard let section = mapping(name) else { return nil }
        let value = read(section)
        section.finish()
        return value
    }

    /// Reads each element of the list `name` as a mapping; `read` gets the element and its index.
    func entries<T>(_ name: String, _ read: (MappingReader, Int) -> T?) -> [T] {
        (sequence(name) ?? []).enumerated().compactMap { i, node in
            guard let entry = reader.mapping(node, key: key("\(name)[\(i)]")) else { return nil }
            let value = read(entry, i)
            entry.finish()
            return value
        }
    }

    func mapping(_ name: String) -> MappingReader? {
        guard let node = value(name) else { return nil }
        return reader.mapping(node, key: key(name))
    }

    func sequence(_ name: String) -> [Node]? {
        guard let node = value(name) else { return nil }
        return reader.sequence(node, key: key(name))
    }

    /// Reports every key that no reader asked for.
    func finish() {
        for entry in entries where !used.contains(entry.key) {
            reader.report(key(entry.key), entry.keyNode, "unknown key")
        }
    }
}

extension Node {
    var kindName: String {
        switch self {
        case .scalar: return "single value"
        case .mapping: return "mapping"
        case .sequence: return "list"
        case .alias: return "alias"
        }
    }
}
