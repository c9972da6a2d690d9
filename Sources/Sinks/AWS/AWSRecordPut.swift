import Foundation
import NIOCore

/// The delivery loop Kinesis `PutRecords` and Firehose `PutRecordBatch` share: many records per
/// call, and an answer per record.
///
/// A batch is cut into calls within the service's limits. When a call succeeds but reports some
/// records failed (throttled, an internal failure), only those are sent again, after a backoff, up
/// to `attempts` calls; then the batch is reported for a retry, and the worker sends it whole
/// again later.
///
/// One bad record never dead-letters the rest of its batch: a record over the per-record limit is
/// not sent (no retry could make it fit), and a call the service refuses for good (a 4xx that is
/// not throttling, credentials or a missing stream, `AWSServiceError`) is split in halves, each sent
/// again, until the refused records are alone. Those go to the dead-letter file and the others are
/// delivered (`partlyRejected`; `rejected` when no record of the batch was stored). The halving is
/// bounded by `isolatingCalls` a batch, so a refusal of every call (a stream name the service finds
/// invalid) costs a few dozen calls, not a thousand: past the budget a refused group is refused whole.
///
/// At least once: records a call stored are sent again when a later call of the same batch fails
/// and the batch is retried whole. Records resent alone arrive after the ones that passed, so per
/// node order holds except around a partial failure (PutRecords does not promise order within a
/// call anyway).
struct AWSRecordPut: Sendable {
    struct Limits: Sendable {
        var maxRecords: Int
        /// Data bytes per call (Kinesis counts partition keys too).
        var maxBytes: Int
        var maxRecordBytes: Int
    }

    /// What one call did.
    enum Answer {
        /// For each record sent, in order: nil when stored, else its error code and message.
        case perRecord([String?])
        /// The whole call failed.
        case failed(DeliveryOutcome)
    }

    /// Records of a batch refused for good so far, and why (each reason once).
    private struct Refusals {
        var indices: [Int] = []
        var reasons: [String] = []

        mutating func add(_ records: [Int], reason: String) {
            indices += records
            if !reasons.contains(reason) { reasons.append(reason) }
        }
    }

    /// Extra calls one batch may make to single out the records a refused call was refused for:
    /// one record among 500 takes 18 (9 halvings, two calls each), a few bad records fit too.
    static let isolatingCalls = 40

    /// `Kinesis` or `Firehose`, for reasons.
    var service: String
    var limits: Limits
    /// Calls per group of records before the batch is reported for a retry.
    var attempts: Int
    var backoff: Backoff

    /// Delivers records `0..<sizes.count` (`sizes[i]` is what record `i` counts against the limits);
    /// `send` makes one call with the records at the given indices.
    func deliver(sizes: [Int], send: ([Int]) async -> Answer) async -> DeliveryOutcome {
        var refusals = Refusals()
        let oversized = sizes.indices.filter { sizes[$0] > limits.maxRecordBytes }
        if let first = oversized.first {
            refusals.add(oversized, reason: oversized.count == 1
                ? "record \(first + 1) of the batch is \(sizes[first]) bytes, over the \(limits.maxRecordBytes)-byte limit of a \(service) record"
                : "\(oversized.count) records of the batch are over the \(limits.maxRecordBytes)-byte limit of a \(service) record "
                    + "(record \(first + 1): \(sizes[first]) bytes)")
        }
        let sendable = sizes.indices.filter { sizes[$0] <= limits.maxRecordBytes }
        var budget = Self.isolatingCalls
        var next = 0
        while next < sendable.count {
            var group: [Int] = []
            var bytes = 0
            while next < sendable.count, group.count < limits.maxRecords,
                group.isEmpty || bytes + sizes[sendable[next]] <= limits.maxBytes
            {
                group.append(sendable[next])
                bytes += sizes[sendable[next]]
                next += 1
            }
            if let retry = await put(group, refusals: &refusals, budget: &budget, send: send) { return retry }
        }
        guard !refusals.indices.isEmpty else { return .delivered }
        let reason = refusals.reasons.joined(separator: "; ")
        if refusals.indices.count == sizes.count { return .rejected(reason: reason) }
        return .partlyRejected(indices: refusals.indices.sorted(), reason: reason)
    }

    /// Sends `group` (one call's worth) until each of its records is stored or refused for good.
    /// - Returns: nil when done; the outcome to report when the batch must be retried.
    private func put(_ group: [Int], refusals: inout Refusals, budget: inout Int, send: ([Int]) async -> Answer) async -> DeliveryOutcome? {
        var pending = group
        var attempt = 0
        while true {
            switch await send(pending) {
            case .failed(.rejected(let reason)):
                guard pending.count > 1, budget >= 2 else {
                    refusals.add(pending, reason: reason)
                    return nil
                }
                // Which records the call was refused for: each half is sent (and judged) on its own.
                budget -= 2
                let half = pending.count / 2
                if let retry = await put(Array(pending[..<half]), refusals: &refusals, budget: &budget, send: send) { return retry }
                return await put(Array(pending[half...]), refusals: &refusals, budget: &budget, send: send)
            case .failed(let outcome):
                return outcome
            case .perRecord(let errors):
                let failed = zip(pending, errors).compactMap { index, error in error.map { (index, $0) } }
                if failed.isEmpty { return nil }
                attempt += 1
                let reason = "\(service): \(failed.count) of \(pending.count) records failed (\(failed[0].1))"
                if attempt >= attempts { return .retry(reason: reason, after: nil) }
                pending = failed.map { $0.0 }
                try? await Task.sleep(for: backoff.delay(attempt: attempt - 1))
                if Task.isCancelled { return .retry(reason: reason, after: nil) }
            }
        }
    }

    /// Makes one JSON-protocol call (`PutRecords`, `PutRecordBatch`) with the records at `indices`
    /// and reads its answer; a call that does not complete is reported for a retry.
    ///
    /// The body is `{<stream>,"Records":[{"Data":"<base64>"<members>},...]}`.
    /// - Parameters:
    ///   - target: the `X-Amz-Target` of the call.
    ///   - stream: the members before `Records`, e.g. `"StreamName":"logs"`.
    ///   - results: where the answer lists the per-record results (`Records`, `RequestResponses`).
    ///   - sizes: what each record counts against the limits, to reserve the body's capacity.
    ///   - overhead: bytes a record takes in the body besides its base64 data, for the same.
    ///   - data: record `i`'s bytes, before base64.
    ///   - members: what record `i`'s object holds after `Data`, each member led by a comma.
    func call(_ client: AWSClient, target: String, stream: String, results: String, indices: [Int], sizes: [Int], overhead: Int,
              data: (Int) -> Data, members: (Int) -> String = { _ in "" }) async -> Answer {
        var body = ByteBuffer()
        body.reserveCapacity(indices.reduce(64) { $0 + sizes[$1] * 4 / 3 + overhead })
        body.writeString("{\(stream),\"Records\":[")
        for (n, index) in indices.enumerated() {
            body.writeString(n == 0 ? "{\"Data\":\"" : ",{\"Data\":\"")
            body.writeString(data(index).base64EncodedString())
            body.writeString("\"\(members(index))}")
        }
        body.writeString("]}")
        do {
            let response = try await client.call(target: target, json: body)
            return Self.answer(response, sent: indices.count, results: results)
        } catch {
            return .failed(.retry(reason: "\(service): \(error)", after: nil))
        }
    }

    /// Reads a call's answer: the error of a refused call, or the per-record results listed under
    /// `results` (`Records`, `RequestResponses`), where a failed record carries `ErrorCode`.
    static func answer(_ response: AWSClient.Response, sent: Int, results: String) -> Answer {
        guard response.succeeded else { return .failed(AWSServiceError(response).outcome) }
        guard let object = try? JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [String: Any],
            let list = object[results] as? [[String: Any]], list.count == sent
        else {
            return .failed(.retry(reason: "unexpected answer: \(String(buffer: response.body).prefix(200))", after: nil))
        }
        return .perRecord(list.map { entry in
            guard let code = entry["ErrorCode"] as? String else { return nil }
            return "\(code): \(entry["ErrorMessage"] as? String ?? "")"
        })
    }
}
