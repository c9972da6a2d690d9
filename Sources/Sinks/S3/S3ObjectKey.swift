import Foundation
#if canImport(Glibc)
import Glibc
#endif
import NIOConcurrencyHelpers

/// Object keys of the S3 sink: `<prefix>YYYY/MM/DD/HH/<gateway-id>-<seq>.jsonl.zst`, the hour (UTC)
/// being when the object was written, as Firehose does.
///
/// `<seq>` is 16 digits: the microseconds since 1970 when the upload started, or one more than the
/// previous key's when the clock stood still or stepped back, shared by every S3 sink of the
/// process. Keys therefore sort in the order the objects were written and never repeat, across
/// sinks writing to one prefix and across restarts (a restart takes longer than a microsecond);
/// only two gateways configured with the same `gateway_id` could meet, which is why it defaults to
/// the host name. The spool position would do too, but sinks do not see it, and a key that changes
/// when a batch is resent is harmless: delivery is at least once anyway.
enum S3ObjectKey {
    private static let last = NIOLockedValueBox<UInt64>(0)

    /// A fresh key for an object written at `date`.
    static func next(prefix: String, gatewayID: String, date: Date = Date()) -> String {
        let micros = UInt64(max(0, date.timeIntervalSince1970 * 1_000_000))
        let sequence = last.withLockedValue { last in
            last = max(last + 1, micros)
            return last
        }
        return make(prefix: prefix, gatewayID: gatewayID, date: date, sequence: sequence)
    }

    static func make(prefix: String, gatewayID: String, date: Date, sequence: UInt64) -> String {
        let digits = String(sequence)
        let padded = String(repeating: "0", count: max(0, 16 - digits.count)) + digits
        return prefix + ZstdArchiveSink.hourPath(date) + "/" + gatewayID + "-" + padded + ".jsonl.zst"
    }

    /// `prefix` as keys start: no leading `/`, one trailing `/` unless empty (`fleet` and `/fleet/`
    /// both give `fleet/`).
    static func normalized(prefix: String) -> String {
        var trimmed = Substring(prefix)
        while trimmed.hasPrefix("/") { trimmed = trimmed.dropFirst() }
        while trimmed.hasSuffix("/") { trimmed = trimmed.dropLast() }
        return trimmed.isEmpty ? "" : String(trimmed) + "/"
    }

    /// This machine's host name with anything but `A-Z a-z 0-9 . _ -` replaced by `-`: the
    /// default `gateway_id`.
    static var defaultGatewayID: String {
        let size = 256
        var buffer = [CChar](repeating: 0, count: size)
        guard gethostname(&buffer, size - 1) == 0 else { return "gateway" }
        let name = sanitized(String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
        return name.isEmpty ? "gateway" : name
    }

    /// `text` with every character outside `A-Z a-z 0-9 . _ -` replaced by `-`.
    static func sanitized(_ text: String) -> String {
        String(text.unicodeScalars.map { scalar -> Character in
            switch scalar {
            case "A"..."Z", "a"..."z", "0"..."9", ".", "_", "-": return Character(scalar)
            default: return "-"
            }
        })
    }
}
