/// Merges several osquery configs into the one config an agent gets, the way osquery itself applies
/// several config sources (docs/protocol.md#config), and records where every entry came from.
///
/// Rules, per top-level key:
/// - `options`: merged by key; a later source wins.
/// - `schedule`, `packs`: names must stay unique, because osquery would run two same-named queries
///   under one name with shared differential state (docs/protocol.md#config). On a clash the
///   `CollisionPolicy` decides: `rename` (default) prefixes the later source's name with its source
///   name and the pack delimiter, `error` refuses the merge, `lastWins` keeps the later one.
/// - `decorators`: `load` and `always` lists concatenated; `interval` merged per interval key, lists
///   concatenated.
/// - `file_paths`, `file_paths_query`: union per category, duplicates removed, order kept;
///   `file_accesses`: union; `exclude_paths`: per category, a later source replaces the list.
/// - `events`, `views`, `auto_table_construction`, `yara`, `feature_vectors`, `prometheus_targets`,
///   `kafka_topics`, `logger`: the whole key from the last source that has it.
/// - any other key: the last source wins, with a warning naming the key.
/// - a top-level `error` key is never emitted: osquery would treat the config as a failure.
///
/// String pack references are resolved by the sources that can read them
/// (`OsqueryConfigFile.resolvingPackPaths`); one that reaches the merger is dropped with a warning,
/// because the TLS plugin cannot resolve it (docs/protocol.md#config).
///
/// Worked example (policy `rename`, delimiter `_`):
/// ```text
/// base:     {"options":{"a":1,"b":1}, "schedule":{"users":{…}}, "decorators":{"load":["SELECT 1"]}}
/// security: {"options":{"b":2},       "schedule":{"users":{…}}, "decorators":{"load":["SELECT 2"]}}
/// merged:   {"options":{"a":1,"b":2},
///            "schedule":{"users":{…base…}, "security_users":{…security…}},
///            "decorators":{"load":["SELECT 1","SELECT 2"]}}
/// ```
struct ConfigMerger: Sendable {
    enum CollisionPolicy: String, Sendable, CaseIterable {
        case rename
        case error
        case lastWins = "last_wins"
    }

    /// One source's content, in merge order.
    struct Contribution: Sendable {
        var source: String
        var config: JSONObject
    }

    struct Result: Sendable {
        var config: JSONObject
        /// Dotted path (`schedule.users`, `packs.it`, `options.a`, `decorators.load[0]`, `events`) → source.
        var origins: [String: String]
        var warnings: [String]
    }

    struct CollisionError: Error, CustomStringConvertible {
        var description: String
    }

    var policy: CollisionPolicy = .rename

    static let wholeKeys: Set<String> = [
        "events", "views", "auto_table_construction", "yara", "feature_vectors", "prometheus_targets",
        "kafka_topics", "logger",
    ]

    /// Merges `contributions` in order.
    /// - Throws: `CollisionError` when the policy is `error` and two sources use one name.
    func merge(_ contributions: [Contribution]) throws -> Result {
        var state = MergeState()
        let delimiter = Self.packDelimiter(contributions)
        for contribution in contributions {
            try merge(contribution, delimiter: delimiter, into: &state)
        }
        return Result(config: state.output, origins: state.origins, warnings: state.warnings)
    }

    private struct MergeState {
        var output = JSONObject()
        var origins: [String: String] = [:]
        var warnings: [String] = []

        subscript(key: String) -> JSONValue? {
            get { output[key] }
            set { output[key] = newValue }
        }
    }

    /// `options.pack_delimiter` as the merged result would have it, else osquery's default `_`.
    static func packDelimiter(_ contributions: [Contribution]) -> String {
        var delimiter = "_"
        for contribution in contributions {
            if case .string(let value)? = contribution.config["options"]?["pack_delimiter"], !value.isEmpty {
                delimiter = value
            }
        }
        return delimiter
    }

    private func merge(_ contribution: Contribution, delimiter: String, into state: inout MergeState) throws {
        let source = contribution.source
        for (key, value) in contribution.config.members {
            if case .null = value { continue }  // osquery skips null values silently
            switch key {
            case "options":
                guard case .object(let incoming) = value else {
                    state.warnings.append("\(source): options is not an object; ignored")
                    continue
                }
                var merged = state["options"]?.object ?? JSONObject()
                for member in incoming.members where member.value != .null {
                    merged[member.key] = member.value
                    state.origins["options.\(member.key)"] = source
                }
                state["options"] = .object(merged)
            case "schedule", "packs":
                guard case .object(let incoming) = value else {
                    state.warnings.append("\(source): \(key) is not an object; ignored")
                    continue
                }
                var merged = state[key]?.object ?? JSONObject()
                for member in incoming.members {
                    let entry = member.value
                    if key == "packs", case .string(let reference) = entry {
                        state.warnings.append("\(source): pack \(member.key) refers to \(reference), which could not be resolved; dropped")
                        continue
                    }
                    if key == "packs", entry.object == nil {
                        state.warnings.append("\(source): pack \(member.key) is not an object; dropped")
                        continue
                    }
                    var name = member.key
                    if merged[name] != nil {
                        switch policy {
                        case .error:
                            throw CollisionError(description: "\(key) name \(name) is used by \(state.origins["\(key).\(name)"] ?? "?") and \(source)")
                        case .lastWins:
                            state.warnings.append("\(source): \(key) \(name) replaces the one from \(state.origins["\(key).\(name)"] ?? "?")")
                        case .rename:
                            var renamed = source + delimiter + name
                            var n = 2
                            while merged[renamed] != nil {
                                renamed = source + delimiter + name + delimiter + String(n)
                                n += 1
                            }
                            state.warnings.append("\(source): \(key) \(name) renamed to \(renamed) (name already used by \(state.origins["\(key).\(name)"] ?? "?"))")
                            name = renamed
                        }
                    }
                    if key == "schedule", entry.object == nil {
                        state.warnings.append("\(source): schedule entry \(member.key) is not an object; dropped")
                        continue
                    }
                    merged[name] = entry
                    state.origins["\(key).\(name)"] = source
                }
                state[key] = .object(merged)
            case "decorators":
                guard case .object(let incoming) = value else {
                    state.warnings.append("\(source): decorators is not an object; ignored")
                    continue
                }
                var merged = state["decorators"]?.object ?? JSONObject()
                for member in incoming.members {
                    switch (member.key, member.value) {
                    case ("load", .array(let list)), ("always", .array(let list)):
                        var existing = merged[member.key]?.arrayValue ?? []
                        for query in list {
                            state.origins["decorators.\(member.key)[\(existing.count)]"] = source
                            existing.append(query)
                        }
                        merged[member.key] = .array(existing)
                    case ("interval", .object(let intervals)):
                        var existing = merged["interval"]?.object ?? JSONObject()
                        for interval in intervals.members {
                            guard case .array(let list) = interval.value else { continue }
                            var queries = existing[interval.key]?.arrayValue ?? []
                            for query in list {
                                state.origins["decorators.interval.\(interval.key)[\(queries.count)]"] = source
                                queries.append(query)
                            }
                            existing[interval.key] = .array(queries)
                        }
                        merged["interval"] = .object(existing)
                    default:
                        state.warnings.append("\(source): decorators.\(member.key) is not understood; ignored")
                    }
                }
                state["decorators"] = .object(merged)
            case "file_paths", "file_paths_query":
                guard case .object(let incoming) = value else { continue }
                var merged = state[key]?.object ?? JSONObject()
                for category in incoming.members {
                    let list = category.value.arrayValue ?? [category.value]
                    var existing = merged[category.key]?.arrayValue ?? []
                    for path in list where !existing.contains(path) { existing.append(path) }
                    merged[category.key] = .array(existing)
                    state.origins["\(key).\(category.key)"] = source
                }
                state[key] = .object(merged)
            case "file_accesses":
                var existing = state[key]?.arrayValue ?? []
                for category in value.arrayValue ?? [] where !existing.contains(category) { existing.append(category) }
                state[key] = .array(existing)
                state.origins[key] = source
            case "exclude_paths":
                guard case .object(let incoming) = value else { continue }
                var merged = state[key]?.object ?? JSONObject()
                for category in incoming.members {
                    merged[category.key] = category.value
                    state.origins["\(key).\(category.key)"] = source
                }
                state[key] = .object(merged)
            case _ where Self.wholeKeys.contains(key):
                state[key] = value
                state.origins[key] = source
            case "error":
                state.warnings.append("\(source): a top-level error key would make agents reject the config; dropped")
            default:
                if let previous = state.origins[key] {
                    state.warnings.append("\(source): unknown key \(key) replaces the one from \(previous)")
                } else {
                    state.warnings.append("\(source): unknown key \(key) passed through")
                }
                state[key] = value
                state.origins[key] = source
            }
        }
    }
}

extension JSONValue {
    var arrayValue: [JSONValue]? {
        if case .array(let array) = self { return array }
        return nil
    }
}
