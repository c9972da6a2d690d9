import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOPosix
import ServiceLifecycle
import Sinks
import UnixSignals

/// SIGHUP: re-reads the configuration file and applies what can change while agents are connected.
///
/// - Live: config sources and targets (the new merged configs are rendered before they replace the
///   old, so no node sees a gap), enroll secrets, the server certificate and key (from the next
///   handshake on, as nginx does), and sinks added, removed or changed (a removed sink's cursor is
///   dropped; a changed one keeps its cursor, so it goes on where it was).
/// - Needs a restart, and is logged as such while the running value stays: listen addresses,
///   data_dir, the node store, the spool, limits, endpoints, the client CA and certificate mode,
///   enrollment by certificate and the secret field, the log level.
/// - A file that does not load or check is refused with its problems; the running configuration
///   stays. Either way file sinks reopen their files (for logrotate) and config sources are re-read.
final class ConfigurationReloader: Service, Sendable {
    /// The running parts a reload changes in place.
    struct Live: Sendable {
        var identity: ServingIdentity
        var secrets: EnrollSecrets
        var agentConfig: AgentConfigService
        var pipeline: LogPipeline
        /// The upstream backend's nodes, for `upstream` sinks added by a reload.
        var upstream: UpstreamNodes? = nil
    }

    private let running: NIOLockedValueBox<GatewayConfiguration>
    private let live: Live
    private let listensForSignals: Bool
    private let logger: Logger
    private var identity: ServingIdentity { live.identity }
    private var secrets: EnrollSecrets { live.secrets }
    private var agentConfig: AgentConfigService { live.agentConfig }
    private var pipeline: LogPipeline { live.pipeline }

    init(running: GatewayConfiguration, live: Live, listensForSignals: Bool, logger: Logger) {
        self.running = NIOLockedValueBox(running)
        self.live = live
        self.listensForSignals = listensForSignals
        self.logger = logger
    }

    func run() async throws {
        guard listensForSignals else {
            // A service that returns early would stop its whole group: wait for the shutdown instead.
            try? await gracefulShutdown()
            return
        }
        for await _ in await UnixSignalsSequence(trapping: .sighup).cancelOnGracefulShutdown() {
            await reload()
        }
    }

    /// Re-reads the file and applies it; see the type's documentation.
    func reload() async {
        let current = running.withLockedValue { $0 }
        defer { reopenFileSinks() }
        guard let file = current.file else {
            await agentConfig.refresh(force: true)
            return
        }
        logger.notice("SIGHUP: reloading the configuration", metadata: ["gw.file": "\(file)"])
        var next: GatewayConfiguration
        do {
            next = try GatewayConfiguration.load(file: file)
            if current.listenFromCommandLine {
                next.listen = current.listen
                next.listenFromCommandLine = true
            }
            try await next.checkServable()
        } catch {
            logger.error("configuration not reloaded; the running one stays", metadata: ["gw.problems": "\(error)"])
            await agentConfig.refresh(force: true)
            return
        }
        let fixed = Self.keepRestartOnlySettings(of: current, in: &next)
        if !fixed.isEmpty {
            logger.warning("changed but needs a restart; the running values stay", metadata: ["gw.keys": "\(fixed.joined(separator: ", "))"])
        }
        var applied: [String] = []
        do {
            let tls = next.tls
            try await NIOThreadPool.singleton.runIfActive { [identity] in
                try identity.reload(certificate: tls.certificate, privateKey: tls.privateKey)
            }
            secrets.replace(with: try EnrollSecretVerifier(configuration: next.enrollment.secrets))
            let fresh = try AgentConfigService(configuration: next.agentConfig, tagsBySecret: next.tagsBySecret, logger: logger)
            await fresh.refresh(force: true)
            let replaced = agentConfig.sources
            agentConfig.adopt(fresh)
            for source in replaced { await (source as? HTTPConfigSource)?.shutdown() }
            applied += ["tls certificate and key", "enroll secrets", "agent_config"]
            applied += try await applySinks(from: current, to: next)
        } catch {
            logger.error("configuration reload failed part-way", metadata: ["gw.error": "\(error)", "gw.applied": "\(applied)"])
        }
        running.withLockedValue { $0 = next }
        logger.notice("configuration reloaded", metadata: ["gw.applied": "\(applied.joined(separator: ", "))"])
    }

    /// Starts new sinks, stops removed ones and restarts changed ones (keeping their cursors).
    private func applySinks(from current: GatewayConfiguration, to next: GatewayConfiguration) async throws -> [String] {
        func fingerprint(_ sink: SinkConfiguration) -> String { "\(sink.kind)|\(sink.match)" }
        let old = Dictionary(current.sinks.map { ($0.name, fingerprint($0)) }, uniquingKeysWith: { a, _ in a })
        let new = Set(next.sinks.map(\.name))
        var changes: [String] = []
        for sink in current.sinks where !new.contains(sink.name) {
            await pipeline.remove(sink: sink.name)
            changes.append("sink \(sink.name) removed")
        }
        for sink in next.sinks {
            switch old[sink.name] {
            case nil:
                pipeline.add(try sink.makeRoute(logger: logger, upstream: live.upstream))
                changes.append("sink \(sink.name) added")
            case let previous? where previous != fingerprint(sink):
                await pipeline.remove(sink: sink.name, keepingCursor: true)
                pipeline.add(try sink.makeRoute(logger: logger, upstream: live.upstream))
                changes.append("sink \(sink.name) changed")
            default:
                break
            }
        }
        return changes
    }

    private func reopenFileSinks() {
        for route in pipeline.routes { (route.sink as? FileSink)?.reopen() }
    }

    /// Puts the running values of settings that need a restart into `next`; returns the keys that
    /// the file changed.
    static func keepRestartOnlySettings(of current: GatewayConfiguration, in next: inout GatewayConfiguration) -> [String] {
        var changed: [String] = []
        func keep<T>(_ key: String, _ path: WritableKeyPath<GatewayConfiguration, T>) {
            if "\(current[keyPath: path])" != "\(next[keyPath: path])" {
                changed.append(key)
                next[keyPath: path] = current[keyPath: path]
            }
        }
        keep("listen", \.listen)
        keep("listen.proxy_protocol", \.proxyProtocol)
        keep("data_dir", \.dataDir)
        keep("node_store", \.nodeStore)
        keep("spool", \.spool)
        keep("limits", \.limits)
        keep("endpoints", \.endpoints)
        keep("tls.client_ca", \.tls.clientCA)
        keep("tls.client_certificates", \.tls.clientCertificates)
        keep("enrollment.client_certificate", \.enrollment.clientCertificate)
        keep("enrollment.secret_field", \.enrollment.secretField)
        keep("admin", \.admin)
        keep("campaigns", \.campaigns)
        keep("carves", \.carves)
        keep("upstream", \.upstream)
        keep("log_level", \.logLevel)
        return changed
    }
}
