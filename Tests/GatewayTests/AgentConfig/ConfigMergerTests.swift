import Foundation
import Testing
@testable import Gateway

/// Table-driven tests of osquery's merge rules (docs/protocol.md#config) as `ConfigMerger` applies them.
@Suite struct ConfigMergerTests {
    struct Case: CustomTestStringConvertible, Sendable {
        var name: String
        var sources: [(String, String)]
        var policy: ConfigMerger.CollisionPolicy = .rename
        var expected: String
        var warning: String?
        var testDescription: String { name }
    }

    static let cases: [Case] = [
        Case(name: "options merge by key, later wins",
             sources: [("a", #"{"options":{"x":1,"y":"a"}}"#), ("b", #"{"options":{"y":"b","z":true}}"#)],
             expected: #"{"options":{"x":1,"y":"b","z":true}}"#),
        Case(name: "an option removed from a source disappears from the result",
             sources: [("a", #"{"options":{"x":1}}"#), ("b", #"{"options":{}}"#)],
             expected: #"{"options":{"x":1}}"#),
        Case(name: "schedule collision is renamed with the source name and delimiter",
             sources: [("base", #"{"schedule":{"users":{"query":"SELECT 1;"}}}"#), ("sec", #"{"schedule":{"users":{"query":"SELECT 2;"}}}"#)],
             expected: #"{"schedule":{"sec_users":{"query":"SELECT 2;"},"users":{"query":"SELECT 1;"}}}"#,
             warning: "sec: schedule users renamed to sec_users (name already used by base)"),
        Case(name: "rename follows options.pack_delimiter",
             sources: [("base", #"{"options":{"pack_delimiter":"/"},"schedule":{"u":{"query":"1"}}}"#), ("sec", #"{"schedule":{"u":{"query":"2"}}}"#)],
             expected: #"{"options":{"pack_delimiter":"/"},"schedule":{"sec/u":{"query":"2"},"u":{"query":"1"}}}"#),
        Case(name: "last_wins keeps the later entry",
             sources: [("a", #"{"schedule":{"u":{"query":"1"}}}"#), ("b", #"{"schedule":{"u":{"query":"2"}}}"#)],
             policy: .lastWins, expected: #"{"schedule":{"u":{"query":"2"}}}"#),
        Case(name: "packs collide and are renamed; packs keep their own options",
             sources: [("a", #"{"packs":{"it":{"queries":{"q":{"query":"1"}}}}}"#),
                       ("b", #"{"packs":{"it":{"options":{"verbose":true},"queries":{"q":{"query":"2"}}}}}"#)],
             expected: #"{"packs":{"b_it":{"options":{"verbose":true},"queries":{"q":{"query":"2"}}},"it":{"queries":{"q":{"query":"1"}}}}}"#),
        Case(name: "decorators: lists concatenate, interval keys merge",
             sources: [("a", #"{"decorators":{"load":["SELECT 1"],"interval":{"3600":["SELECT a"]}}}"#),
                       ("b", #"{"decorators":{"load":["SELECT 2"],"always":["SELECT 3"],"interval":{"3600":["SELECT b"],"60":["SELECT c"]}}}"#)],
             expected: #"{"decorators":{"always":["SELECT 3"],"interval":{"3600":["SELECT a","SELECT b"],"60":["SELECT c"]},"load":["SELECT 1","SELECT 2"]}}"#),
        Case(name: "file_paths union per category, duplicates removed, order kept",
             sources: [("a", #"{"file_paths":{"etc":["/etc/%%","/bin/%"]},"file_accesses":["etc"]}"#),
                       ("b", #"{"file_paths":{"etc":["/bin/%","/sbin/%"],"tmp":["/tmp/%"]},"file_accesses":["tmp","etc"]}"#)],
             expected: #"{"file_accesses":["etc","tmp"],"file_paths":{"etc":["/etc/%%","/bin/%","/sbin/%"],"tmp":["/tmp/%"]}}"#),
        Case(name: "exclude_paths: later source replaces a category",
             sources: [("a", #"{"exclude_paths":{"etc":["/etc/a"],"tmp":["/tmp/x"]}}"#), ("b", #"{"exclude_paths":{"etc":["/etc/b"]}}"#)],
             expected: #"{"exclude_paths":{"etc":["/etc/b"],"tmp":["/tmp/x"]}}"#),
        Case(name: "whole keys come from the last source that has them",
             sources: [("a", #"{"events":{"disable_subscribers":["user_events"]},"yara":{"signatures":{"a":["x"]}}}"#),
                       ("b", #"{"events":{"enable_subscribers":["process_events"]}}"#), ("c", #"{"options":{}}"#)],
             expected: #"{"events":{"enable_subscribers":["process_events"]},"options":{},"yara":{"signatures":{"a":["x"]}}}"#),
        Case(name: "unknown keys: last wins with a warning",
             sources: [("a", #"{"custom":1}"#), ("b", #"{"custom":2}"#)],
             expected: #"{"custom":2}"#, warning: "b: unknown key custom replaces the one from a"),
        Case(name: "a top-level error key is never emitted",
             sources: [("a", #"{"error":"x","options":{"a":1}}"#)],
             expected: #"{"options":{"a":1}}"#),
        Case(name: "string pack references are dropped with a warning",
             sources: [("a", #"{"packs":{"remote":"/nowhere/pack.conf","ok":{"queries":{}}}}"#)],
             expected: #"{"packs":{"ok":{"queries":{}}}}"#,
             warning: "a: pack remote refers to /nowhere/pack.conf, which could not be resolved; dropped"),
        Case(name: "null values are skipped, as osquery skips them",
             sources: [("a", #"{"options":{"x":1}}"#), ("b", #"{"options":null,"schedule":null}"#)],
             expected: #"{"options":{"x":1}}"#),
    ]

    @Test(arguments: cases)
    func mergeRule(_ test: Case) throws {
        let contributions = try test.sources.map { name, text in
            ConfigMerger.Contribution(source: name, config: try #require(JSONValue(parsing: Array(text.utf8)).object))
        }
        let result = try ConfigMerger(policy: test.policy).merge(contributions)
        #expect(String(decoding: JSONValue.object(result.config).canonicalJSON(), as: UTF8.self) == test.expected)
        if let warning = test.warning { #expect(result.warnings.contains(warning), "\(result.warnings)") }
    }

    @Test func errorPolicyRefusesACollision() throws {
        let a = try #require(JSONValue(parsing: Array(#"{"schedule":{"u":{"query":"1"}}}"#.utf8)).object)
        #expect(throws: ConfigMerger.CollisionError.self) {
            try ConfigMerger(policy: .error).merge([.init(source: "a", config: a), .init(source: "b", config: a)])
        }
    }

    @Test func originsNameTheSourceOfEveryEntry() throws {
        let a = try #require(JSONValue(parsing: Array(#"{"options":{"x":1},"schedule":{"u":{"query":"1"}},"decorators":{"load":["SELECT 1"]}}"#.utf8)).object)
        let b = try #require(JSONValue(parsing: Array(#"{"packs":{"p":{"queries":{}}},"schedule":{"u":{"query":"2"}}}"#.utf8)).object)
        let result = try ConfigMerger().merge([.init(source: "a", config: a), .init(source: "b", config: b)])
        #expect(result.origins["options.x"] == "a")
        #expect(result.origins["schedule.u"] == "a")
        #expect(result.origins["schedule.b_u"] == "b")
        #expect(result.origins["packs.p"] == "b")
        #expect(result.origins["decorators.load[0]"] == "a")
    }
}
