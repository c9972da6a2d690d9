import Foundation

/// One osquery config JSON file.
///
/// Lines whose first non-blank characters are `#` or `//` are dropped before parsing, as osquery's
/// filesystem plugin does (its example config is full of them).
struct FileConfigSource: Sendable {
    let name: String
    let path: String

    /// Reads and parses the file.
    /// - Throws: a message naming the file and what is wrong with it.
    func load() throws -> JSONObject {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw AgentConfigError("cannot read \(path)")
        }
        let lines = data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).filter { line in
            let trimmed = line.drop { $0 == 0x20 || $0 == 0x09 }
            return !(trimmed.first == UInt8(ascii: "#") || trimmed.starts(with: Array("//".utf8)))
        }
        let text = Array(lines.joined(separator: [UInt8(ascii: "\n")]))
        let value: JSONValue
        do {
            value = try JSONValue(parsing: text)
        } catch {
            throw AgentConfigError("\(path) is not valid JSON: \(error)")
        }
        guard let object = value.object else { throw AgentConfigError("\(path) must hold a JSON object") }
        return object
    }
}

struct AgentConfigError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
