import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore

/// Serves the osquery config: sources combined in order, rendered once, handed out from memory.
///
/// Combining (until the full merger of issue #4): `options`, `schedule`, `packs` and `decorators` are
/// merged per key, a later source winning a clash; any other top-level key is taken whole from the
/// last source that has it. The result is canonical JSON (sorted keys), so the same inputs always give
/// the same bytes and agents do not reconfigure on every refresh (PROTOCOL.md 3.2).
///
/// A source that fails to load keeps its last good content; if a source never loaded, the service
/// has no config and the endpoint answers 503 with an error body, never an empty body (which would
/// wipe the agent's schedule).
final class AgentConfigService: Sendable {
    private let sources: [FileConfigSource]
    private let logger: Logger
    private struct State {
        var lastGood: [String: JSONObject] = [:]
        var rendered: ByteBuffer?
        var errors: [String: String] = [:]
    }
    private let state = NIOLockedValueBox(State())

    init(sources: [FileConfigSource], logger: Logger) {
        self.sources = sources
        self.logger = logger
        reload()
    }

    /// The config every node gets, or nil when none can be served.
    var config: ByteBuffer? { state.withLockedValue { $0.rendered } }

    /// Problems with sources at the last reload, by source name.
    var errors: [String: String] { state.withLockedValue { $0.errors } }

    /// Re-reads every source (on SIGHUP).
    func reload() {
        var loaded: [String: JSONObject] = [:]
        var errors: [String: String] = [:]
        for source in sources {
            do {
                loaded[source.name] = try source.load()
            } catch {
                errors[source.name] = "\(error)"
                logger.error("config source failed; keeping its last good content", metadata: ["gw.source": "\(source.name)", "gw.error": "\(error)"])
            }
        }
        state.withLockedValue { state in
            state.lastGood.merge(loaded) { _, new in new }
            state.errors = errors
            let available = sources.compactMap { state.lastGood[$0.name] }
            guard !sources.isEmpty, available.count == sources.count else {
                if state.rendered == nil { state.rendered = nil }
                return
            }
            let combined = Self.combine(available)
            state.rendered = ByteBuffer(bytes: JSONValue.object(combined).canonicalJSON())
        }
    }

    /// Combines sources in order (see the type's discussion).
    static func combine(_ configs: [JSONObject]) -> JSONObject {
        let mergedByKey: Set<String> = ["options", "schedule", "packs", "decorators"]
        var result = JSONObject()
        for config in configs {
            for (key, value) in config.members {
                if mergedByKey.contains(key), case .object(let incoming) = value, case .object(var existing)? = result[key] {
                    for member in incoming.members { existing[member.key] = member.value }
                    result[key] = .object(existing)
                } else {
                    result[key] = value
                }
            }
        }
        // A top-level "error" key would make every delivery fail (PROTOCOL.md 3.2).
        result["error"] = nil
        return result
    }
}
