import Foundation
import NIOCore
import Testing
@testable import Sinks

/// The delivery loop's decisions, event by event, with no spool, sink or clock: each test is the
/// script of what the worker would do and what the machine answers. (Events are sent outside
/// `#expect`, which only compares what they returned.)
@Suite struct DeliveryStateMachineTests {
    /// An action with its records reduced to their ids, so scripts compare with `==`.
    enum Step: Equatable {
        case read(Spool.Position)
        case wait(Duration)
        case tick
        case deliver([Int])
        case backOff(Duration, attempt: Int)
        case deadLetter([Int], reason: String)
        case save(Spool.Position)
        case stop
    }

    func step(_ action: DeliveryStateMachine.Action) -> Step {
        switch action {
        case .read(let position): .read(position)
        case .wait(let duration): .wait(duration)
        case .tick: .tick
        case .deliver(let batch): .deliver(batch.map { recordID($0) })
        case .backOff(let delay, let attempt): .backOff(delay, attempt: attempt)
        case .writeDeadLetter(let batch, let reason): .deadLetter(batch.map { recordID($0) }, reason: reason)
        case .saveCursor(let position): .save(position)
        case .stop: .stop
        }
    }

    func recordID(_ record: LogRecord) -> Int {
        Int(String(buffer: record.json).split(separator: ",")[0].dropFirst(6))!
    }

    /// Position `offset` in segment 1.
    func at(_ offset: Int) -> Spool.Position {
        Spool.Position(segment: 1, offset: offset)
    }

    func records(_ ids: Range<Int>, receivedAt: Date = Date()) -> [LogRecord] {
        ids.map { id in
            var item = record(id)
            item.receivedAt = receivedAt
            return item
        }
    }

    func machine(_ batching: Batching = Batching(maxRecords: 3, maxBytes: 1 << 20), match: SinkMatch = SinkMatch(),
                 now: ContinuousClock.Instant = .now) -> DeliveryStateMachine {
        DeliveryStateMachine(
            cursor: at(0),
            policy: .init(batching: batching, match: match, backoff: Backoff(base: .milliseconds(100), cap: .seconds(1)), pollInterval: .milliseconds(20)),
            now: now)
    }

    @Test func aFullBatchIsDeliveredAndOnlyThenTheCursorSaved() {
        // maxWait is set, but a full batch never waits.
        var m = machine(Batching(maxRecords: 3, maxBytes: 1 << 20, maxWait: .seconds(1)))
        let reading = [m.start(), m.readCompleted(records(0..<3), next: at(300))].map { step($0) }
        #expect(reading == [.read(at(0)), .deliver([0, 1, 2])])
        #expect(m.cursor == at(0), "not moved while the batch is out")
        let delivered = step(m.deliveryCompleted(.delivered))
        #expect(delivered == .save(at(300)))
        let saved = step(m.cursorSaved())
        #expect(saved == .read(at(300)))
        #expect(m.cursor == at(300))
    }

    @Test func aPartialBatchWaitsOnceUpToMaxWait() {
        var m = machine(Batching(maxRecords: 10, maxBytes: 1 << 20, maxWait: .milliseconds(500)))
        let now = Date()
        let script = [
            m.start(),
            // Two of ten records, the oldest 100 ms old: wait for more.
            m.readCompleted(records(0..<2, receivedAt: now), next: at(200), date: now.addingTimeInterval(0.1)),
            m.timerFired(),
            // Read again after the wait: whatever is there goes, even if still partial.
            m.readCompleted(records(0..<4, receivedAt: now), next: at(400), date: now.addingTimeInterval(0.6)),
            m.deliveryCompleted(.delivered),
            m.cursorSaved(),
            // A partial batch whose oldest record is older than maxWait goes at once.
            m.readCompleted(records(4..<5, receivedAt: now.addingTimeInterval(-1)), next: at(500), date: now),
        ].map { step($0) }
        #expect(script == [
            .read(at(0)), .wait(.milliseconds(500)), .read(at(0)), .deliver([0, 1, 2, 3]), .save(at(400)), .read(at(400)), .deliver([4]),
        ])
    }

    @Test func retriesBackOffGrowingCappedAndHonourRetryAfter() {
        var m = machine()
        let batch = records(0..<3)
        var delays: [Step] = []
        _ = m.start()
        let failures: [(DeliveryOutcome, jitter: Double)] = [
            (.retry(reason: "HTTP 503", after: nil), 1),
            (.retry(reason: "timeout", after: nil), 1),
            (.retry(reason: "HTTP 429", after: .seconds(7)), 1),
            (.retry(reason: "HTTP 503", after: nil), 1),
            (.retry(reason: "HTTP 503", after: nil), 1),
            (.retry(reason: "HTTP 503", after: nil), 0.5),
        ]
        for (outcome, jitter) in failures {
            let delivery = step(m.readCompleted(batch, next: at(300)))
            delays.append(step(m.deliveryCompleted(outcome, jitter: jitter)))
            // The batch is read again from the cursor once the backoff ends.
            let reread = step(m.timerFired())
            #expect(delivery == .deliver([0, 1, 2]))
            #expect(reread == .read(at(0)))
            #expect(m.cursor == at(0), "a failed batch keeps the cursor")
        }
        #expect(delays == [
            .backOff(.milliseconds(100), attempt: 1), .backOff(.milliseconds(200), attempt: 2),
            .backOff(.seconds(7), attempt: 3), .backOff(.milliseconds(800), attempt: 4),
            .backOff(.seconds(1), attempt: 5), .backOff(.milliseconds(500), attempt: 6),
        ])
        _ = m.readCompleted(batch, next: at(300))
        let delivered = step(m.deliveryCompleted(.delivered))
        #expect(delivered == .save(at(300)))
        #expect(m.attempt == 0)
        _ = m.cursorSaved()
        // The next batch starts over.
        _ = m.readCompleted(records(3..<6), next: at(600))
        let retry = step(m.deliveryCompleted(.retry(reason: "HTTP 503", after: nil), jitter: 1))
        #expect(retry == .backOff(.milliseconds(100), attempt: 1))
    }

    @Test func aRejectedBatchIsDeadLetteredAndThenTheCursorSaved() {
        var m = machine()
        let script = [
            m.start(),
            m.readCompleted(records(0..<3), next: at(300)),
            m.deliveryCompleted(.rejected(reason: "HTTP 400")),
            m.deadLetterWritten(),
            m.cursorSaved(),
            // The dead-letter file cannot be written: the batch stays and is sent again.
            m.readCompleted(records(3..<6), next: at(600)),
            m.deliveryCompleted(.rejected(reason: "HTTP 413")),
            m.deadLetterFailed(),
            m.timerFired(),
            m.readCompleted(records(3..<6), next: at(600)),
        ].map { step($0) }
        #expect(script == [
            .read(at(0)), .deliver([0, 1, 2]), .deadLetter([0, 1, 2], reason: "HTTP 400"), .save(at(300)), .read(at(300)),
            .deliver([3, 4, 5]), .deadLetter([3, 4, 5], reason: "HTTP 413"), .wait(.seconds(1)), .read(at(300)), .deliver([3, 4, 5]),
        ])
        #expect(m.cursor == at(300))
    }

    /// One node's records refused, the rest delivered (the upstream sink): only the refused ones
    /// are dead-lettered, then the cursor moves past the whole batch; no index refused is a delivery.
    @Test func aPartlyRejectedBatchDeadLettersOnlyItsRefusedRecords() {
        var m = machine()
        let script = [
            m.start(),
            m.readCompleted(records(0..<3), next: at(300)),
            m.deliveryCompleted(.partlyRejected(indices: [1], reason: "node_invalid")),
            m.deadLetterWritten(),
            m.cursorSaved(),
            m.readCompleted(records(3..<6), next: at(600)),
            m.deliveryCompleted(.partlyRejected(indices: [], reason: "none")),
        ].map { step($0) }
        #expect(script == [
            .read(at(0)), .deliver([0, 1, 2]), .deadLetter([1], reason: "node_invalid"), .save(at(300)), .read(at(300)),
            .deliver([3, 4, 5]), .save(at(600)),
        ])
    }

    /// A worker's loop over scripted outcomes: every `saveCursor` comes right after a delivery or a
    /// dead-letter write that succeeded, and never otherwise.
    @Test func theCursorIsSavedOnlyAfterADeliveryOrADeadLetterCompletes() {
        var m = machine()
        var outcomes: [DeliveryOutcome] = [
            .retry(reason: "timeout", after: nil), .rejected(reason: "HTTP 400"), .retry(reason: "HTTP 503", after: .seconds(1)),
            .delivered, .delivered, .rejected(reason: "HTTP 400"),
        ]
        var deadLetterWrites = [false, true]
        var saves: [Spool.Position] = []
        var completed = false
        var action = m.start()
        loop: for _ in 0..<100 {
            if case .saveCursor(let position) = action {
                #expect(completed, "saved at \(position) before the batch was dealt with")
                saves.append(position)
            }
            completed = false
            switch action {
            case .read(let position):
                guard !outcomes.isEmpty else {
                    action = m.shutdown() ?? .stop
                    continue
                }
                // Three records of 100 bytes at every position.
                let first = position.offset / 100
                action = m.readCompleted(records(first..<(first + 3)), next: at(position.offset + 300))
            case .deliver:
                let outcome = outcomes.removeFirst()
                completed = outcome == .delivered
                action = m.deliveryCompleted(outcome, jitter: 0)
            case .writeDeadLetter:
                completed = deadLetterWrites.removeFirst()
                action = completed ? m.deadLetterWritten() : m.deadLetterFailed()
            case .wait, .backOff:
                action = m.timerFired()
            case .tick:
                action = m.tickCompleted()
            case .saveCursor:
                action = m.cursorSaved()
            case .stop:
                break loop
            }
        }
        #expect(saves == [at(300), at(600), at(900)])
        #expect(m.cursor == at(900))
        #expect(outcomes.isEmpty && deadLetterWrites.isEmpty)
    }

    /// A shutdown during a delivery lets it finish: delivered, the cursor is saved and then the loop
    /// stops; told to retry, it stops at once and the batch is sent again after the restart.
    @Test func aShutdownDuringADeliveryStopsAfterItsCursorIsSaved() {
        var delivered = machine()
        _ = delivered.start()
        _ = delivered.readCompleted(records(0..<3), next: at(300))
        let finishing = [delivered.shutdown().map { step($0) }, step(delivered.deliveryCompleted(.delivered)), step(delivered.cursorSaved())]
        #expect(finishing == [nil, .save(at(300)), .stop])
        #expect(delivered.cursor == at(300))

        var retried = machine()
        _ = retried.start()
        _ = retried.readCompleted(records(0..<3), next: at(300))
        let stopping = [retried.shutdown().map { step($0) }, step(retried.deliveryCompleted(.retry(reason: "HTTP 503", after: nil)))]
        #expect(stopping == [nil, .stop])
        #expect(retried.cursor == at(0), "not saved: the batch goes again after the restart")
    }

    @Test func aShutdownWhileBackingOffStops() {
        var m = machine()
        _ = m.start()
        _ = m.readCompleted(records(0..<3), next: at(300))
        let script = [
            step(m.deliveryCompleted(.retry(reason: "HTTP 503", after: .seconds(30)))),
            m.shutdown().map { step($0) },
            // The sleep ends early and finds the loop stopped.
            step(m.timerFired()),
        ]
        #expect(script == [.backOff(.seconds(30), attempt: 1), .stop, .stop])
        #expect(m.cursor == at(0))
    }

    @Test func anIdleSinkPollsAndTicksAboutOnceASecond() {
        let start = ContinuousClock.now
        var m = machine(now: start)
        let script = [
            m.start(),
            m.readCompleted([], next: at(0), now: start + .milliseconds(100)),
            m.timerFired(),
            m.readCompleted([], next: at(0), now: start + .seconds(1)),
            m.tickCompleted(now: start + .seconds(1)),
            m.timerFired(),
            m.readCompleted([], next: at(0), now: start + .milliseconds(1500)),
        ].map { step($0) }
        #expect(script == [
            .read(at(0)), .wait(.milliseconds(20)), .read(at(0)), .tick, .wait(.milliseconds(20)), .read(at(0)), .wait(.milliseconds(20)),
        ])
    }

    @Test func recordsTheSinkDoesNotTakeMoveTheCursorWithoutADelivery() {
        var m = machine(match: SinkMatch(logTypes: [.status]))
        let mixed = [record(3), record(4, kind: .status), record(5)]
        let script = [
            m.start(),
            m.readCompleted(records(0..<3), next: at(300)),
            m.cursorSaved(),
            m.readCompleted(mixed, next: at(600)),
        ].map { step($0) }
        #expect(script == [.read(at(0)), .save(at(300)), .read(at(300)), .deliver([4])])
    }
}
