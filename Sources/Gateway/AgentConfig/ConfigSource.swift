import Foundation

/// A place an osquery config comes from.
///
/// Sources are refreshed every `refreshInterval` by `AgentConfigService`; one that fails keeps
/// serving its last good content, and its error and age are reported (logs, `config render`).
///
/// ```swift
/// let source = FileConfigSource(name: "base", path: "/etc/osquery/base.conf")
/// let config = try await source.load()   // a JSON object in osquery's config shape
/// ```
protocol ConfigSource: Sendable {
    /// The name used in targets, renamed queries (`<name>_<query>`) and provenance.
    var name: String { get }
    /// How often the content is fetched again.
    var refreshInterval: Duration { get }
    /// Fetches the current content.
    func load() async throws -> JSONObject
}

struct AgentConfigError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Reading osquery config files: comment lines and string pack references, as osquery's filesystem
/// plugin handles them.
enum OsqueryConfigFile {
    /// Parses a file's bytes as osquery's `stripConfigComments` prepares them: line continuations
    /// (a backslash ending a line, as in osquery's shipped packs) are joined, then lines whose first
    /// non-blank characters are `#` or `//` are dropped.
    static func parse(_ data: Data, path: String) throws -> JSONObject {
        var joined: [UInt8] = []
        joined.reserveCapacity(data.count)
        var bytes = data.makeIterator()
        while let byte = bytes.next() {
            if byte == UInt8(ascii: "\\") {
                guard let next = bytes.next() else { joined.append(byte); break }
                if next != UInt8(ascii: "\n") { joined.append(byte); joined.append(next) }
            } else {
                joined.append(byte)
            }
        }
        let lines = joined.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).filter { line in
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

    /// Reads and parses a file.
    static func read(_ path: String) throws -> JSONObject {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw AgentConfigError("cannot read \(path)")
        }
        return try parse(data, path: path)
    }

    /// Replaces string pack references (`"packs": {"it": "/path/it.conf"}`) with the pack bodies they
    /// name, relative to `folder`. The TLS plugin cannot resolve them itself (docs/protocol.md#config); one
    /// that cannot be read is left as a string, and the merger drops and reports it.
    static func resolvingPackPaths(_ config: JSONObject, relativeTo folder: String) -> JSONObject {
        guard case .object(var packs)? = config["packs"] else { return config }
        for (i, member) in packs.members.enumerated() {
            guard case .string(let reference) = member.value else { continue }
            let path = reference.hasPrefix("/") ? reference : folder + "/" + reference
            if let pack = try? read(path) { packs.members[i].value = .object(pack) }
        }
        var resolved = config
        resolved["packs"] = .object(packs)
        return resolved
    }
}

/// One osquery config JSON file.
struct FileConfigSource: ConfigSource {
    let name: String
    let path: String
    var refreshInterval: Duration = .seconds(10)

    func load() async throws -> JSONObject {
        let config = try OsqueryConfigFile.read(path)
        return OsqueryConfigFile.resolvingPackPaths(config, relativeTo: (path as NSString).deletingLastPathComponent)
    }
}

/// Every `*.conf` and `*.json` file of a folder, in name order, as osquery's packs folders work.
///
/// A file holding only a pack body (it has `queries` and no `schedule`, `packs` or `options`) becomes a
/// pack named after the file (`it-compliance.conf` → pack `it-compliance`). Other files are whole
/// configs, merged in name order with later files winning.
struct DirectoryConfigSource: ConfigSource {
    let name: String
    let path: String
    var refreshInterval: Duration = .seconds(10)

    func load() async throws -> JSONObject {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: path) else {
            throw AgentConfigError("cannot read folder \(path)")
        }
        var packs = JSONObject()
        var contributions: [ConfigMerger.Contribution] = []
        for entry in entries.sorted() where entry.hasSuffix(".conf") || entry.hasSuffix(".json") {
            let file = path + "/" + entry
            let config = OsqueryConfigFile.resolvingPackPaths(try OsqueryConfigFile.read(file), relativeTo: path)
            let isPack = config["queries"] != nil && config["schedule"] == nil && config["packs"] == nil && config["options"] == nil
            if isPack {
                packs[(entry as NSString).deletingPathExtension] = .object(config)
            } else {
                contributions.append(.init(source: name, config: config))
            }
        }
        if !packs.members.isEmpty { contributions.append(.init(source: name, config: JSONObject([("packs", .object(packs))]))) }
        return try ConfigMerger(policy: .lastWins).merge(contributions).config
    }
}

/// A config written in the gateway's YAML file.
struct InlineConfigSource: ConfigSource {
    let name: String
    let config: JSONObject
    var refreshInterval: Duration { .seconds(3600) }

    func load() async throws -> JSONObject { config }
}

/// A source whose content differs per node and is only known when that node asks: `upstream: true`,
/// the upstream backend's config for the node, fetched with its key (`UpstreamConfig`).
///
/// Between requests it contributes nothing: the target's shared config is rendered with `{}` in its
/// place, which is also what a node gets from the other sources alone while the backend is down.
struct PerNodeConfigSource: ConfigSource {
    let name: String
    var refreshInterval: Duration { .seconds(3600) }

    func load() async throws -> JSONObject { JSONObject() }
}
