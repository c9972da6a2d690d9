import Foundation
@testable import Gateway
import Logging
import NIOCore
import Sinks
import Support
import Testing

/// Sources, targeting, caching and last-good behaviour of `AgentConfigService`, on real files.
@Suite struct AgentConfigServiceTests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures").path

    var logger: Logger {
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        return logger
    }

    func write(_ text: String, to path: String) throws {
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
    }

    func node(platformType: String = "9", details: String = "{}", secret: String? = "default", host: String = "web-1") -> NodeRecord {
        NodeRecord(id: UUID().uuidString, keyHash: [1, 2, 3], hostKey: nil, hostIdentifier: host, platformType: platformType,
                   hostDetails: details, secretName: secret, certificateFingerprint: nil, enrolledAt: Date(), lastSeen: nil)
    }

    func service(_ sources: [any ConfigSource], targets: [AgentConfigTarget] = [], options: AgentConfigService.Options = .init(),
                 tags: [String: [String]] = [:]) -> AgentConfigService {
        var all = targets
        all.append(.init(name: "default", match: .init(), sources: sources.map(\.name)))
        return AgentConfigService(sources: sources, targets: all, options: options, tagsBySecret: tags, logger: logger)
    }

    func served(_ service: AgentConfigService, _ node: NodeRecord) -> String? {
        service.config(for: node, certificate: nil).map { String(buffer: $0.json) }
    }

    @Test func osquerysExampleConfigAndShippedPacksLoad() async throws {
        let example = try await FileConfigSource(name: "example", path: Self.fixtures + "/osquery.example.conf").load()
        #expect(example["schedule"]?["system_info"] != nil)
        #expect(example["decorators"]?["load"]?.arrayValue?.count == 2)
        let packs = try await DirectoryConfigSource(name: "packs", path: Self.fixtures + "/osquery-packs").load()
        let names = packs["packs"]?.object?.keys.sorted()
        #expect(names == ["hardware-monitoring", "incident-response", "it-compliance", "osquery-monitoring", "ossec-rootkit",
                          "osx-attacks", "unwanted-chrome-extensions", "vuln-management", "windows-attacks", "windows-hardening"])
        let wireLurker = packs["packs"]?["osx-attacks"]?["queries"]?["WireLurker"]?["query"]?.string
        #expect(wireLurker?.hasPrefix("select * from launchd where         name = 'com.apple.machook_damon.plist' OR") == true)
    }

    @Test func stringPackPathsAreResolvedRelativeToTheFile() async throws {
        let dir = makeTemporaryDirectory("packs")
        try write(#"{"packs":{"it":"packs/it.conf","gone":"packs/missing.conf"}}"#, to: dir + "/main.conf")
        try write(#"{"queries":{"q":{"query":"SELECT 1;","interval":60}}}"#, to: dir + "/packs/it.conf")
        let service = service([FileConfigSource(name: "main", path: dir + "/main.conf")])
        await service.refresh(force: true)
        let rendered = try #require(service.config(for: node(), certificate: nil))
        #expect(String(buffer: rendered.json) == #"{"packs":{"it":{"queries":{"q":{"interval":60,"query":"SELECT 1;"}}}}}"#)
        #expect(rendered.warnings.contains { $0.contains("gone") })
    }

    @Test func targetsPickSourcesFirstMatchWins() async throws {
        let base = InlineConfigSource(name: "base", config: JSONObject([("options", .object(JSONObject([("a", .number("1"))])))]))
        let mac = InlineConfigSource(name: "mac", config: JSONObject([("schedule", .object(JSONObject([("m", .object(JSONObject([("query", .string("mac"))])))])))]))
        let staging = InlineConfigSource(name: "staging", config: JSONObject([("options", .object(JSONObject([("verbose", .bool(true))])))]))
        let targets = [
            AgentConfigTarget(name: "macs", match: .init(platforms: ["darwin"]), sources: ["base", "mac"]),
            AgentConfigTarget(name: "staging", match: .init(tags: ["staging"]), sources: ["base", "staging"]),
            AgentConfigTarget(name: "db", match: .init(hostIdentifiers: ["db-*"], versions: VersionRange(">=5.10 <6")), sources: ["staging"]),
            AgentConfigTarget(name: "ubuntu", match: .init(platforms: ["ubuntu"]), sources: ["mac"]),
        ]
        let service = service([base, mac, staging], targets: targets, tags: ["stage": ["staging"]])
        await service.refresh(force: true)
        let facts = { (node: NodeRecord) in service.facts(node, nil) }
        #expect(service.targetIndex(for: facts(node(platformType: "21"))) == 0)  // macOS bitmask
        #expect(service.targetIndex(for: facts(node(platformType: "21", secret: "stage"))) == 0)  // first match wins
        #expect(service.targetIndex(for: facts(node(secret: "stage"))) == 1)
        let v = #"{"osquery_info":{"version":"5.12.1"}}"#
        #expect(service.targetIndex(for: facts(node(details: v, host: "db-7"))) == 2)
        #expect(service.targetIndex(for: facts(node(details: #"{"osquery_info":{"version":"4.9.0"}}"#, host: "db-7"))) == 4)
        #expect(service.targetIndex(for: facts(node(details: #"{"os_version":{"platform":"ubuntu"}}"#))) == 3)
        #expect(service.targetIndex(for: facts(node())) == 4)
        #expect(served(service, node(platformType: "21")) == #"{"options":{"a":1},"schedule":{"m":{"query":"mac"}}}"#)
        #expect(served(service, node(secret: "stage")) == #"{"options":{"a":1,"verbose":true}}"#)
    }

    @Test func certificateNamesCanTarget() {
        let target = AgentConfigTarget(name: "fleet", match: .init(certificates: ["*.servers.example"]), sources: [])
        var facts = NodeFacts(hostIdentifier: "h", platforms: [], secretName: nil, tags: [], certificateNames: ["CN=web,O=x", "web.servers.example"], osqueryVersion: nil)
        #expect(target.matches(facts))
        facts.certificateNames = ["laptop.corp.example"]
        #expect(!target.matches(facts))
        #expect(Glob.matches("web-?", "web-1") && !Glob.matches("web-?", "web-10") && Glob.matches("*", ""))
    }

    @Test func aFailingSourceKeepsItsLastGoodContent() async throws {
        let dir = makeTemporaryDirectory("stale")
        try write(#"{"schedule":{"a":{"query":"SELECT 1;"}}}"#, to: dir + "/a.conf")
        let service = service([FileConfigSource(name: "a", path: dir + "/a.conf")])
        await service.refresh(force: true)
        let before = served(service, node())
        try write("{ broken", to: dir + "/a.conf")
        await service.refresh(force: true)
        #expect(served(service, node()) == before)
        let status = try #require(service.snapshot(target: 0).sources["a"])
        #expect(status.error?.contains("not valid JSON") == true)
        #expect(status.loadedAt != nil)
    }

    @Test func aSourceThatNeverLoadedMeansNoConfigRatherThanAPartialOne() async throws {
        let dir = makeTemporaryDirectory("never")
        try write(#"{"options":{"a":1}}"#, to: dir + "/a.conf")
        let service = service([FileConfigSource(name: "a", path: dir + "/a.conf"), FileConfigSource(name: "b", path: dir + "/missing.conf")])
        await service.refresh(force: true)
        #expect(served(service, node()) == nil)
        try write(#"{"options":{"b":2}}"#, to: dir + "/missing.conf")
        await service.refresh(force: true)
        #expect(served(service, node()) == #"{"options":{"a":1,"b":2}}"#)
    }

    @Test func theErrorPolicyKeepsTheLastGoodConfig() async throws {
        let dir = makeTemporaryDirectory("policy")
        try write(#"{"schedule":{"a":{"query":"1"}}}"#, to: dir + "/a.conf")
        try write(#"{"schedule":{"b":{"query":"2"}}}"#, to: dir + "/b.conf")
        let service = service([FileConfigSource(name: "a", path: dir + "/a.conf"), FileConfigSource(name: "b", path: dir + "/b.conf")],
                              options: .init(policy: .error))
        await service.refresh(force: true)
        let good = served(service, node())
        #expect(good == #"{"schedule":{"a":{"query":"1"},"b":{"query":"2"}}}"#)
        try write(#"{"schedule":{"a":{"query":"3"}}}"#, to: dir + "/b.conf")
        await service.refresh(force: true)
        #expect(served(service, node()) == good)
        #expect(service.snapshot(target: 0).problem?.contains("schedule name a is used by a and b") == true)
    }

    @Test func oversizedOrTooDeepConfigsKeepTheLastGoodOne() async throws {
        let dir = makeTemporaryDirectory("size")
        try write(#"{"options":{"a":1}}"#, to: dir + "/a.conf")
        let service = service([FileConfigSource(name: "a", path: dir + "/a.conf")], options: .init(maxSize: 1000))
        await service.refresh(force: true)
        let good = served(service, node())
        try write(#"{"options":{"a":""# + String(repeating: "x", count: 2000) + #""}}"#, to: dir + "/a.conf")
        await service.refresh(force: true)
        #expect(served(service, node()) == good)
        #expect(service.snapshot(target: 0).problem?.contains("the limit is 1000") == true)
        try write(#"{"options":{"a":"# + String(repeating: "[", count: 40) + String(repeating: "]", count: 40) + "}}", to: dir + "/a.conf")
        await service.refresh(force: true)
        #expect(served(service, node()) == good)
        #expect(service.snapshot(target: 0).problem?.contains("nested") == true)
    }

    @Test func outputIsByteStableAcrossRestartsAndKeyOrder() async throws {
        let dir = makeTemporaryDirectory("stable")
        try write(#"{"schedule":{"b":{"query":"2","interval":60},"a":{"query":"1"}},"options":{"z":1,"y":2}}"#, to: dir + "/a.conf")
        let first = service([FileConfigSource(name: "a", path: dir + "/a.conf"), DirectoryConfigSource(name: "packs", path: Self.fixtures + "/osquery-packs")])
        await first.refresh(force: true)
        let restarted = service([FileConfigSource(name: "a", path: dir + "/a.conf"), DirectoryConfigSource(name: "packs", path: Self.fixtures + "/osquery-packs")])
        await restarted.refresh(force: true)
        let bytes = try #require(served(first, node()))
        #expect(served(restarted, node()) == bytes)
        // Same content, keys reordered in the file: same bytes.
        try write(#"{"options":{"y":2,"z":1},"schedule":{"a":{"query":"1"},"b":{"interval":60,"query":"2"}}}"#, to: dir + "/a.conf")
        await first.refresh(force: true)
        #expect(served(first, node()) == bytes)
    }
}
