import Support

/// A JSON document as a tree, for small bodies and osquery config files.
///
/// Numbers keep their source text, so a config passes through the gateway without float rounding.
enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    case number(String)
    case string(String)
    case array([JSONValue])
    case object(JSONObject)

    /// Parses `text` strictly (see `JSONScanner`).
    init(parsing bytes: some Collection<UInt8>) throws(JSONError) {
        let array = Array(bytes)
        let result = array.withUnsafeBytes { raw -> Result<JSONValue, JSONError> in
            do throws(JSONError) {
                var scanner = JSONScanner(raw)
                let value = try scanner.readValue()
                try scanner.expectEnd()
                return .success(value)
            } catch {
                return .failure(error)
            }
        }
        self = try result.get()
    }

    var object: JSONObject? {
        if case .object(let object) = self { return object }
        return nil
    }

    var string: String? {
        if case .string(let string) = self { return string }
        return nil
    }

    subscript(key: String) -> JSONValue? { object?[key] }
}

/// A JSON object that keeps member order, as RapidJSON does; lookups take the first of duplicate keys.
struct JSONObject: Sendable, Equatable {
    var members: [(key: String, value: JSONValue)]

    init(_ members: [(String, JSONValue)] = []) {
        self.members = members.map { (key: $0.0, value: $0.1) }
    }

    static func == (lhs: JSONObject, rhs: JSONObject) -> Bool {
        lhs.members.count == rhs.members.count
            && zip(lhs.members, rhs.members).allSatisfy { $0.key == $1.key && $0.value == $1.value }
    }

    subscript(key: String) -> JSONValue? {
        get { members.first { $0.key == key }?.value }
        set {
            if let i = members.firstIndex(where: { $0.key == key }) {
                if let newValue { members[i].value = newValue } else { members.remove(at: i) }
            } else if let newValue {
                members.append((key, newValue))
            }
        }
    }

    var keys: [String] { members.map(\.key) }
}

extension JSONValue {
    /// Compact JSON with object keys sorted by their UTF-8 bytes, so equal content gives equal bytes.
    ///
    /// osquery hashes the config text and reconfigures whenever it changes (docs/protocol.md#config), so the
    /// config endpoint must never reorder keys between refreshes. Duplicate keys keep the first value.
    func canonicalJSON() -> [UInt8] {
        var out: [UInt8] = []
        writeCanonical(to: &out)
        return out
    }

    func writeCanonical(to out: inout [UInt8]) {
        switch self {
        case .null: out.append(contentsOf: "null".utf8)
        case .bool(let value): out.append(contentsOf: (value ? "true" : "false").utf8)
        case .number(let text): out.append(contentsOf: text.utf8)
        case .string(let text): JSONString.write(text, to: &out)
        case .array(let elements):
            out.append(UInt8(ascii: "["))
            for (i, element) in elements.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                element.writeCanonical(to: &out)
            }
            out.append(UInt8(ascii: "]"))
        case .object(let object):
            var seen = Set<String>()
            let unique = object.members.filter { seen.insert($0.key).inserted }
            let sorted = unique.sorted { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }
            out.append(UInt8(ascii: "{"))
            for (i, member) in sorted.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                JSONString.write(member.key, to: &out)
                out.append(UInt8(ascii: ":"))
                member.value.writeCanonical(to: &out)
            }
            out.append(UInt8(ascii: "}"))
        }
    }
}

extension JSONValue {
    /// Indented JSON with sorted keys, for people (`config render`).
    func prettyJSON(indent: Int = 0) -> String {
        let pad = String(repeating: "  ", count: indent + 1)
        let close = String(repeating: "  ", count: indent)
        switch self {
        case .array(let elements) where !elements.isEmpty:
            return "[\n" + elements.map { pad + $0.prettyJSON(indent: indent + 1) }.joined(separator: ",\n") + "\n\(close)]"
        case .object(let object) where !object.members.isEmpty:
            var seen = Set<String>()
            let members = object.members.filter { seen.insert($0.key).inserted }
                .sorted { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }
            return "{\n" + members.map { pad + JSONString.quoted($0.key) + ": " + $0.value.prettyJSON(indent: indent + 1) }
                .joined(separator: ",\n") + "\n\(close)}"
        default:
            return String(decoding: canonicalJSON(), as: UTF8.self)
        }
    }
}
