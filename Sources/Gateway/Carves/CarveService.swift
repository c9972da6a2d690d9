import Foundation
import Logging
import NIOConcurrencyHelpers
import ServiceLifecycle
import Sinks

/// File carving (issue 11 item 4): gives each carve start a session, stores every block durably as
/// it arrives, and assembles the file once the last one is in.
///
/// osquery sends blocks strictly in order, but since 5.22.1 it sends a block again when its answer
/// was lost, and a gateway restart or a load balancer can reorder what arrives; so blocks are
/// taken in any order and more than once (stored once), and nothing depends on the order. A session
/// belongs to the node that started it: a block carrying another node's key is refused (403) and
/// stores nothing. Assembly runs in `run()`, not in the agent's request, so a 2 GiB carve's last
/// block is still answered within osquery's 16 s deadline.
final class CarveService: Service, Sendable {
    /// The `carves` section.
    struct Configuration: Sendable, Equatable {
        /// The SQLite file holding carves and their blocks until assembly (`carves.sqlite` in `data_dir`).
        var path: String
        /// Where assembled carves are kept, one file per carve named by its id (`carves` in `data_dir`).
        var directory: String
        /// Largest `carve_size` accepted.
        var maxSize = 2 << 30
        /// Largest `block_size` accepted (a block's base64 body must also fit `limits.max_body`).
        var maxBlockSize = 8 << 20
        /// Carves receiving blocks at once; more starts are refused until one ends.
        var maxOpenSessions = 64
        /// A carve whose last block has not arrived this long after its start expires (its blocks
        /// are dropped).
        var maxSessionAge: Duration = .seconds(86_400)
    }

    let configuration: Configuration
    let store: any CarveStore
    /// Where the campaign that asked for a carve is found (by the `carve_guid` in its rows).
    let campaigns: (any CampaignStore)?
    /// The largest block this gateway takes: `max_block_size`, or less when its base64 body would
    /// not fit `limits.max_body`.
    let maxBlockSize: Int
    private let maxBlockSizeReason: String
    private let logger: Logger
    /// Carves whose last block arrived, waiting for `run()` to assemble them.
    private let queued = NIOLockedValueBox<[String]>([])

    /// - Parameter maxBlockBody: `limits.max_body`, the largest block request body the listener reads.
    init(configuration: Configuration, store: any CarveStore, campaigns: (any CampaignStore)?, maxBlockBody: Int, logger: Logger) {
        self.configuration = configuration
        self.store = store
        self.campaigns = campaigns
        self.logger = logger
        // base64 is 4 bytes per 3; 512 bytes for the JSON around it.
        let fitsBody = max(0, (maxBlockBody - 512) / 4 * 3)
        if fitsBody < configuration.maxBlockSize {
            maxBlockSize = fitsBody
            maxBlockSizeReason = "the largest block whose base64 body fits limits.max_body (\(fitsBody) bytes)"
        } else {
            maxBlockSize = configuration.maxBlockSize
            maxBlockSizeReason = "carves.max_block_size (\(configuration.maxBlockSize) bytes)"
        }
    }

    /// The assembled file of `carve` (it exists once the carve is complete).
    func file(of carve: Carve) -> String { configuration.directory + "/" + carve.id }

    // MARK: - Agent side

    /// Opens a session for `node`'s carve; a start osquery sends again (its answer was lost) gets
    /// the same session.
    /// - Throws: `OsqueryError` for sizes that do not add up (400), a carve or block over the limits
    ///   (413), too many open sessions (503), an unavailable store (503).
    func start(_ request: CarveStartRequest, node: NodeRecord, at now: Date = Date()) async throws -> Carve {
        // The limits first: they bound the sizes, so the block arithmetic below cannot overflow.
        guard request.carveSize <= configuration.maxSize else {
            throw OsqueryError.tooLarge("carve_size \(request.carveSize) is larger than carves.max_size (\(configuration.maxSize) bytes)")
        }
        guard request.blockSize <= maxBlockSize else {
            throw OsqueryError.tooLarge("block_size \(request.blockSize) is larger than \(maxBlockSizeReason)")
        }
        guard request.blockSize > 0 || request.carveSize == 0 else { throw OsqueryError.badRequest("block_size must be above 0") }
        let expectedCount = request.blockSize == 0 ? 0 : (request.carveSize + request.blockSize - 1) / request.blockSize
        guard request.blockCount == expectedCount else {
            throw OsqueryError.badRequest(
                "block_count \(request.blockCount) does not match carve_size \(request.carveSize) in blocks of \(request.blockSize) bytes (\(expectedCount))")
        }
        let requestID = request.requestID ?? ""
        if let existing = try await stored({ try await self.store.carve(nodeID: node.id, carveGUID: request.carveID) }),
            existing.state == .receiving, existing.requestID == requestID, existing.blockCount == request.blockCount,
            existing.blockSize == request.blockSize, existing.size == request.carveSize, !isStale(existing, at: now)
        {
            return existing
        }
        var openSessions = try await stored { try await self.store.openCount() }
        if openSessions >= configuration.maxOpenSessions {
            await expireStale(at: now)
            openSessions = try await stored { try await self.store.openCount() }
        }
        guard openSessions < configuration.maxOpenSessions else {
            throw OsqueryError.unavailable(
                "too many carves in progress (carves.max_open_sessions is \(configuration.maxOpenSessions)); carve again later")
        }
        var carve = Carve(
            id: UUID().uuidString.lowercased(), sessionID: NodeKey.generate(), nodeID: node.id, hostIdentifier: node.hostIdentifier,
            carveGUID: request.carveID, requestID: requestID, blockCount: request.blockCount, blockSize: request.blockSize,
            size: request.carveSize, startedAt: now)
        if let link = await campaignLink(for: carve) {
            carve.campaignID = link.campaignID
            carve.path = link.path
        }
        let created = carve
        try await stored { try await self.store.create(created) }
        logger.notice("carve started", metadata: [
            "gw.carve": "\(carve.id)", "gw.node": "\(node.id)", "gw.bytes": "\(carve.size)", "gw.blocks": "\(carve.blockCount)",
            "gw.campaign": "\(carve.campaignID ?? "-")",
        ])
        if carve.blockCount == 0 { enqueue(carve.id) }
        return carve
    }

    /// Stores one block; returns once it is durable. A block already stored (osquery resends a
    /// block whose answer was lost) is accepted again and stored once.
    /// - Parameter node: the node named by the block's `Authorization: NodeKey` header (osquery
    ///   5.23+); nil for older agents, whose blocks the session id alone identifies.
    /// - Throws: `OsqueryError`: no such session (404), another node's session (403), an ended
    ///   session (410), a block id out of range or of the wrong length (400), an unavailable store (503).
    func block(_ request: CarveBlockRequest, node: NodeRecord?, at now: Date = Date()) async throws {
        let sessionID = request.sessionID
        guard let carve = try await stored({ try await self.store.carve(sessionID: sessionID) }) else {
            throw OsqueryError.notFound("no carve session with this session_id")
        }
        if let node, node.id != carve.nodeID {
            logger.warning("carve block with another node's key refused", metadata: ["gw.carve": "\(carve.id)", "gw.node": "\(node.id)"])
            throw OsqueryError.forbidden("this carve session belongs to another node")
        }
        if let requestID = request.requestID, requestID != carve.requestID {
            throw OsqueryError.badRequest("request_id does not match the carve session")
        }
        guard request.blockID < carve.blockCount else {
            throw OsqueryError.badRequest("block_id \(request.blockID) is out of range for a carve of \(carve.blockCount) blocks")
        }
        switch carve.state {
        case .complete:
            return  // a retried last block: everything is already in
        case .expired:
            throw OsqueryError.gone(expiredMessage)
        case .failed:
            throw OsqueryError.gone("carve failed: \(carve.error ?? "unknown reason")")
        case .receiving:
            break
        }
        if isStale(carve, at: now) {
            await expire(carve, at: now)
            throw OsqueryError.gone(expiredMessage)
        }
        let expected = carve.expectedLength(ofBlock: request.blockID)
        guard request.data.count == expected else {
            throw OsqueryError.badRequest("block \(request.blockID) has \(request.data.count) bytes; expected \(expected)")
        }
        let (id, index, data) = (carve.id, request.blockID, request.data)
        let (_, count) = try await stored { try await self.store.store(block: index, of: id, data: data) }
        if count >= carve.blockCount { enqueue(carve.id) }
    }

    private var expiredMessage: String {
        "carve session expired (carves.max_session_age is \(configuration.maxSessionAge.components.seconds)s)"
    }

    private func isStale(_ carve: Carve, at now: Date) -> Bool {
        let age = configuration.maxSessionAge.components
        return now.timeIntervalSince(carve.startedAt) > Double(age.seconds) + Double(age.attoseconds) / 1e18
    }

    /// Store failures become the 503 error body (osquery retries the request, then gives the carve up).
    private func stored<T: Sendable>(_ work: @Sendable () async throws -> T) async throws -> T {
        do {
            return try await work()
        } catch {
            logger.error("carve store unavailable", metadata: ["gw.error": "\(error)"])
            throw OsqueryError.unavailable("carves cannot be stored right now; retry later")
        }
    }

    // MARK: - The campaign that asked

    /// The campaign whose `carves` query scheduled this carve: the answer from the same node whose
    /// rows hold a row with this `carve_guid` (osquery's `carve_id`). osquery's `request_id` is a
    /// random UUID since 4.7 (docs/protocol.md#carving), so it links only for older agents, which
    /// sent the distributed query id.
    func campaignLink(for carve: Carve) async -> (campaignID: String, path: String?)? {
        guard let campaigns else { return nil }
        if carve.requestID.hasPrefix(Campaign.idPrefix), (try? await campaigns.campaign(id: carve.requestID)) != nil {
            return (carve.requestID, nil)
        }
        guard let answers = try? await campaigns.answers(from: carve.nodeID, mentioning: carve.carveGUID) else { return nil }
        for answer in answers.reversed() {
            guard case .array(let rows)? = try? JSONValue(parsing: Array(answer.rows.utf8)) else { continue }
            for row in rows where row["carve_guid"]?.string == carve.carveGUID {
                return (answer.campaignID, row["path"]?.string)
            }
        }
        return nil
    }

    // MARK: - Assembly and expiry

    private func enqueue(_ id: String) {
        queued.withLockedValue { $0.append(id) }
    }

    /// Assembles every queued carve, and every 30 s expires stale sessions and assembles carves
    /// whose blocks are all in but whose file is not (after a restart, or a failed attempt).
    func run() async throws {
        var lastSweep: ContinuousClock.Instant?
        while ServiceLoop.keepRunning {
            if lastSweep.map({ ContinuousClock.now - $0 >= .seconds(30) }) ?? true {
                await sweep()
                lastSweep = ContinuousClock.now
            }
            let ids = queued.withLockedValue { (queue: inout [String]) -> [String] in
                defer { queue.removeAll() }
                return queue
            }
            for id in ids where ServiceLoop.keepRunning { await assemble(id) }
            await ServiceLoop.pause(.milliseconds(100))
        }
    }

    /// Expires stale sessions and assembles carves that have all their blocks.
    func sweep(at now: Date = Date()) async {
        guard let receiving = try? await store.receivingCarves() else { return }
        await expireStale(receiving, at: now)
        for carve in receiving where carve.isAssemblable && ServiceLoop.keepRunning { await assemble(carve.id) }
    }

    /// Expires the stale sessions among `receiving` (read from the store when nil).
    private func expireStale(_ receiving: [Carve]? = nil, at now: Date) async {
        var receiving = receiving
        if receiving == nil { receiving = try? await store.receivingCarves() }
        for carve in receiving ?? [] where !carve.isAssemblable && isStale(carve, at: now) {
            await expire(carve, at: now)
        }
    }

    private func expire(_ carve: Carve, at now: Date) async {
        do {
            try await store.end(carve.id, as: .expired, reason: expiredMessage, at: now)
            logger.notice("carve expired", metadata: ["gw.carve": "\(carve.id)", "gw.blocks": "\(carve.blocksReceived) of \(carve.blockCount)"])
        } catch {
            logger.warning("could not mark a carve expired; retried", metadata: ["gw.carve": "\(carve.id)", "gw.error": "\(error)"])
        }
    }

    /// Writes the carve's blocks, in order, to its file, checks the size, records the SHA-256 and
    /// whether it is zstd, and marks it complete. A size that does not add up fails the carve; an
    /// I/O or store error leaves it for the next sweep.
    func assemble(_ id: String) async {
        do {
            guard let carve = try await store.carve(id: id), carve.isAssemblable else { return }
            let assembled: CarveAssembler.Result
            do {
                assembled = try await CarveAssembler(store: store, directory: configuration.directory).assemble(carve)
            } catch let mismatch as CarveAssembler.Mismatch {
                try await store.end(carve.id, as: .failed, reason: mismatch.description, at: Date())
                logger.error("carve failed", metadata: ["gw.carve": "\(carve.id)", "gw.error": "\(mismatch)"])
                return
            }
            try await store.complete(carve.id, sha256: assembled.sha256, compressed: assembled.compressed, at: Date())
            if carve.campaignID == nil, let link = await campaignLink(for: carve) {
                try? await store.link(carve.id, campaignID: link.campaignID, path: link.path)
            }
            logger.notice("carve complete", metadata: [
                "gw.carve": "\(carve.id)", "gw.bytes": "\(carve.size)", "gw.sha256": "\(assembled.sha256)",
                "gw.zstd": "\(assembled.compressed)",
            ])
        } catch is CancellationError {
            return
        } catch {
            logger.warning("carve not assembled yet; retried", metadata: ["gw.carve": "\(id)", "gw.error": "\(error)"])
        }
    }
}

extension CarveService.Configuration {
    /// Defaults with the store and folder in `data_dir`.
    init(dataDirectory reader: YAMLReader) {
        self.init(path: reader.inDataDir("carves.sqlite"), directory: reader.inDataDir("carves"))
    }

    /// `carves`: `sqlite` and `directory` (in `data_dir`), `max_size`, `max_block_size`,
    /// `max_open_sessions`, `max_session_age`.
    init(reading section: MappingReader) {
        self.init(
            path: section.dataPath("sqlite") ?? section.reader.inDataDir("carves.sqlite"),
            directory: section.dataPath("directory") ?? section.reader.inDataDir("carves"))
        if let size = section.size("max_size", minimum: 1) { maxSize = size }
        if let size = section.size("max_block_size", minimum: 1) { maxBlockSize = size }
        if let count = section.integer("max_open_sessions", in: 1...100_000) { maxOpenSessions = count }
        if let age = section.duration("max_session_age", minimum: .seconds(1)) { maxSessionAge = age }
    }
}
