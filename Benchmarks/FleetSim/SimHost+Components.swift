import NIOCore

/// osqueryd's config, distributed and logger components, each with osquery's own retry rules
/// (docs/protocol.md#retries). Each runs one request at a time and schedules its next period only
/// when the previous request is over, as osquery's component threads do.
extension SimHost {
    // MARK: - Config

    /// One config try; the first answer (or the third failure) starts the other components.
    func requestConfig() {
        configAttempts += 1
        withKey { [self] in
            send(.config, slot: .config, body: fleet.bodies.nodeKeyOnly(nodeKey ?? "")) { [self] verdict in
                if case .failed(let kind) = verdict {
                    if !retry(after: kind, attempt: configAttempts, .config) { configFinished(ok: false) }
                } else {
                    configFinished(ok: true)
                }
            }
        }
    }

    /// osquery fetches config once unless `--config_refresh` is set; a failed refresh switches to
    /// `--config_accelerated_refresh` until one succeeds.
    private func configFinished(ok: Bool) {
        configAttempts = 0
        if !ok { fleet.counters.configFailures += 1 }
        if !componentsRunning {
            componentsRunning = true
            distributedAttempts = 0
            if settings.distributedInterval > 0 { readDistributed() }
            if settings.logShare > 0 { schedule(.logger, in: settings.loggerPeriod) }
        }
        if settings.configRefresh > 0 {
            schedule(.configRefresh, in: ok ? settings.configRefresh : settings.configAcceleratedRefresh)
        }
    }

    /// Config and distributed requests: 3 attempts, sleeping 1 s then 4 s; `node_invalid` drops the
    /// key and the next attempt, at once, enrolls first. False when the attempts are used up.
    private func retry(after kind: FailureKind, attempt: Int, _ action: HostAction) -> Bool {
        if kind == .nodeInvalid { nodeKey = nil }
        guard attempt < 3 else { return false }
        if kind == .nodeInvalid {
            perform(action)
        } else {
            schedule(action, in: attempt == 1 ? 1 : 4)
        }
        return true
    }

    // MARK: - Distributed

    /// A distributed read every `--distributed_interval`; queries it returns are answered by a write
    /// (with no rows) before the next period starts.
    func readDistributed() {
        distributedAttempts += 1
        withKey { [self] in
            send(.distributedRead, slot: .distributed, body: fleet.bodies.nodeKeyOnly(nodeKey ?? "")) { [self] verdict in
                switch verdict {
                case .failed(let kind):
                    if !retry(after: kind, attempt: distributedAttempts, .distributedRead) { nextDistributedRound() }
                case .accepted(let ids):
                    distributedAttempts = 0
                    pendingQueryIDs += ids.filter { !pendingQueryIDs.contains($0) }
                    if pendingQueryIDs.isEmpty {
                        nextDistributedRound()
                    } else {
                        writeAttempts = 0
                        writeDistributed()
                    }
                case .enrolled:
                    nextDistributedRound()
                }
            }
        }
    }

    /// Failed writes are retried as reads are, then merged into the next round's write.
    func writeDistributed() {
        writeAttempts += 1
        withKey { [self] in
            let body = fleet.bodies.distributedWrite(queryIDs: pendingQueryIDs, nodeKey: nodeKey ?? "")
            send(.distributedWrite, slot: .distributed, body: body) { [self] verdict in
                if case .failed(let kind) = verdict {
                    if !retry(after: kind, attempt: writeAttempts, .distributedWrite) { nextDistributedRound() }
                } else {
                    pendingQueryIDs = []
                    nextDistributedRound()
                }
            }
        }
    }

    private func nextDistributedRound() {
        distributedAttempts = 0
        writeAttempts = 0
        schedule(.distributedRead, in: settings.distributedInterval)
    }

    // MARK: - Logger

    /// Every `--logger_tls_period`: new result lines arrive in a share of periods; whatever is buffered
    /// (up to `--logger_tls_max_lines`) is sent, and deleted only once accepted. After k failures in a
    /// row the next try waits period × k², capped by `--logger_tls_backoff_max` (osquery 5.12+).
    func flushLogs() {
        if fleet.random() < settings.logShare {
            logPending = min(logPending + settings.logLines, 10_000_000)
        }
        guard logPending > 0 else {
            schedule(.logger, in: settings.loggerPeriod)
            return
        }
        let first = logFirst
        let count = min(logPending, settings.loggerMaxLines)
        withKey { [self] in
            let body = fleet.bodies.logger(identity, nodeKey: nodeKey ?? "", first: first, count: count)
            send(.logger, slot: .logger, body: body) { [self] verdict in
                if case .failed(let kind) = verdict {
                    if kind == .nodeInvalid { nodeKey = nil }
                    logFailures += 1
                    let backoff = settings.loggerPeriod * Double(logFailures * logFailures)
                    schedule(.logger, in: min(backoff, settings.loggerBackoffMax))
                } else {
                    logFirst += count
                    logPending -= count
                    logFailures = 0
                    schedule(.logger, in: settings.loggerPeriod)
                }
            }
        }
    }
}
