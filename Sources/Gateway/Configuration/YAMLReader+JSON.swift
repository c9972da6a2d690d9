import Yams

extension YAMLReader {
    /// A YAML tree as JSON: plain scalars that look like numbers, booleans or null become those.
    func json(_ node: Node, key: String) -> JSONValue? {
        switch node {
        case .scalar(let scalar):
            let text = scalar.string
            guard scalar.style == .plain else { return .string(text) }
            switch text {
            case "true", "True", "TRUE": return .bool(true)
            case "false", "False", "FALSE": return .bool(false)
            case "null", "~", "": return .null
            default:
                if Int(text) != nil { return .number(text) }
                if Double(text) != nil, text.allSatisfy({ "0123456789.eE+-".contains($0) }) { return .number(text) }
                return .string(text)
            }
        case .mapping(let mapping):
            var object = JSONObject()
            for (k, v) in mapping {
                let name = k.string ?? ""
                if let value = json(v, key: key + "." + name) { object.members.append((name, value)) }
            }
            return .object(object)
        case .sequence(let sequence):
            return .array(sequence.enumerated().compactMap { json($1, key: key + "[\($0)]") })
        case .alias:
            report(key, node, "aliases are not supported here")
            return nil
        }
    }
}
