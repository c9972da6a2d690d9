/// The subject each record is published on, from a template such as `osquery.{log_type}.{name}`.
///
/// Placeholders: `{log_type}` (`result`, `status`, `distributed`), `{name}` (the query name, or the
/// distributed query id), `{host_identifier}` and `{node}` (the gateway's node id). A value is made
/// one subject token: the characters NATS gives a meaning to or splits on (space and other control
/// or blank characters, `.`, `*`, `>`) become `_`, and an empty or missing value is `_`, so a query
/// named `pack.a b` is published on `osquery.result.pack_a_b`, never on a wildcard or a deeper subject.
public struct NATSSubjectTemplate: Sendable, Equatable, CustomStringConvertible {
    enum Part: Sendable, Equatable {
        case text(String)
        case logType, name, hostIdentifier, node
    }

    /// Why a template cannot be used.
    public struct Invalid: Error, CustomStringConvertible {
        public var description: String
    }

    /// The template as written.
    public let text: String
    let parts: [Part]

    /// - Throws: `Invalid` for an unknown or unclosed placeholder, characters a subject cannot hold
    ///   (spaces, `*`, `>`), or empty tokens (`a..b`, a leading or trailing dot).
    public init(_ text: String) throws {
        var parts: [Part] = []
        var rest = Substring(text)
        while !rest.isEmpty {
            if rest.first == "{" {
                guard let close = rest.firstIndex(of: "}") else { throw Invalid(description: "unclosed { in \"\(text)\"") }
                let name = rest[rest.index(after: rest.startIndex)..<close]
                switch name {
                case "log_type": parts.append(.logType)
                case "name": parts.append(.name)
                case "host_identifier": parts.append(.hostIdentifier)
                case "node": parts.append(.node)
                default:
                    throw Invalid(description: "unknown placeholder {\(name)}; use {log_type}, {name}, {host_identifier} or {node}")
                }
                rest = rest[rest.index(after: close)...]
            } else {
                let end = rest.firstIndex(of: "{") ?? rest.endIndex
                let literal = rest[..<end]
                if literal.contains("}") { throw Invalid(description: "} without { in \"\(text)\"") }
                if literal.unicodeScalars.contains(where: { $0.value <= 0x20 || $0 == "*" || $0 == ">" }) {
                    throw Invalid(description: "a subject cannot hold spaces, * or > (\"\(text)\")")
                }
                parts.append(.text(String(literal)))
                rest = rest[end...]
            }
        }
        self.text = text
        self.parts = parts
        // Every placeholder renders as one non-empty token, so empty tokens can only be the literal's.
        let sample = render(logType: "x", name: "x", hostIdentifier: "x", node: "x")
        if sample.isEmpty || sample.split(separator: ".", omittingEmptySubsequences: false).contains(where: \.isEmpty) {
            throw Invalid(description: "\"\(text)\" has an empty subject token (a leading, trailing or double dot)")
        }
    }

    /// The subject for `record`.
    public func subject(for record: LogRecord) -> String {
        render(logType: record.kind.rawValue, name: record.queryName ?? "", hostIdentifier: record.hostIdentifier, node: record.nodeID)
    }

    private func render(logType: String, name: String, hostIdentifier: String, node: String) -> String {
        var subject = ""
        for part in parts {
            switch part {
            case .text(let text): subject += text
            case .logType: subject += Self.token(logType)
            case .name: subject += Self.token(name)
            case .hostIdentifier: subject += Self.token(hostIdentifier)
            case .node: subject += Self.token(node)
            }
        }
        return subject
    }

    /// What a stream needs to take every subject of the template: the template itself when it has no
    /// placeholder, else its leading placeholder-free tokens and `>` (`osquery.{log_type}.{name}`:
    /// `osquery.>`); nil when the first token already holds a placeholder.
    public var streamSubjects: [String]? {
        let tokens = text.split(separator: ".", omittingEmptySubsequences: false)
        let fixed = tokens.prefix(while: { !$0.contains("{") })
        if fixed.count == tokens.count { return [text] }
        if fixed.isEmpty { return nil }
        return [fixed.joined(separator: ".") + ".>"]
    }

    /// `value` as one subject token.
    static func token(_ value: String) -> String {
        guard !value.isEmpty else { return "_" }
        func replaced(_ byte: UInt8) -> Bool {
            byte <= 0x20 || byte == 0x7F || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "*") || byte == UInt8(ascii: ">")
        }
        guard value.utf8.contains(where: replaced) else { return value }
        return String(decoding: value.utf8.map { replaced($0) ? UInt8(ascii: "_") : $0 }, as: UTF8.self)
    }

    public var description: String { text }
}
