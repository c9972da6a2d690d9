@testable import Sinks
import Support
import Testing

@Suite struct SinkMatchTests {
    @Test func everyGivenConditionMustHold() {
        var r = record(1, name: "pack_detections_ssh")
        #expect(SinkMatch().matches(r))
        #expect(SinkMatch(logTypes: [.result]).matches(r))
        #expect(!SinkMatch(logTypes: [.status, .distributed]).matches(r))
        #expect(SinkMatch(queries: ["pack_detections_*"]).matches(r))
        #expect(!SinkMatch(queries: ["pack_it_*"]).matches(r))
        #expect(SinkMatch(secrets: ["default"]).matches(r))
        #expect(!SinkMatch(secrets: ["staging"]).matches(r))
        #expect(SinkMatch(platforms: ["linux"]).matches(r))
        #expect(!SinkMatch(logTypes: [.result], platforms: ["darwin"]).matches(r))
        r.queryName = nil
        #expect(!SinkMatch(queries: ["*"]).matches(r))
        #expect(Glob.matches("pack_?_x*", "pack_a_xyz") && !Glob.matches("pack_?_x", "pack_ab_x"))
    }

    @Test func backoffIsCappedWithFullJitterAndHonoursHints() {
        let backoff = Backoff(base: .milliseconds(100), cap: .seconds(2))
        #expect(backoff.delay(attempt: 0, random: { _ in 1 }) == .milliseconds(100))
        #expect(backoff.delay(attempt: 3, random: { _ in 1 }) == .milliseconds(800))
        #expect(backoff.delay(attempt: 20, random: { _ in 1 }) == .seconds(2))
        #expect(backoff.delay(attempt: 20, random: { _ in 0 }) == .zero)
        #expect(backoff.delay(attempt: 0, hint: .seconds(7)) == .seconds(7))
        #expect(backoff.delay(attempt: 0, hint: .seconds(86400)) == .seconds(300))
    }
}

@Suite struct CRC32CTests {
    @Test func knownAnswers() {
        // RFC 3720 test vectors for CRC-32C.
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
        #expect(CRC32C.checksum([UInt8](repeating: 0, count: 32)) == 0x8A91_36AA)
        #expect(CRC32C.checksum([UInt8](repeating: 0xFF, count: 32)) == 0x62A8_AB43)
        #expect(CRC32C.checksum([]) == 0)
    }
}
