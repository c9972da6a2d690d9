#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import NIOCore

/// Syslog facilities by their usual names; the code is the position (RFC 5424, table 1).
public enum SyslogFacility: String, Sendable, CaseIterable {
    case kern, user, mail, daemon, auth, syslog, lpr, news, uucp, cron, authpriv, ftp, ntp, audit, alert, clock
    case local0, local1, local2, local3, local4, local5, local6, local7

    /// The numeric facility, 0 (`kern`) to 23 (`local7`).
    public var code: Int { Self.allCases.firstIndex(of: self) ?? 16 }
}

/// One record as an RFC 5424 message, framed by octet counting (RFC 6587 3.4.1, the framing RFC 5425
/// uses over TLS too):
///
/// `LEN SP <PRI>1 TIMESTAMP HOSTNAME APP-NAME - MSGID [osquery@32473 ...] MSG`
///
/// - PRI: the configured facility and a severity: a status record's (INFO 6, WARNING 4, ERROR 3,
///   FATAL 2), informational (6) for everything else;
/// - TIMESTAMP: when the gateway received the record, UTC with microseconds;
/// - HOSTNAME: the node's host identifier, cut to printable ASCII and 255 bytes (the exact value is in
///   the structured data);
/// - MSGID: the log type (`result`, `status`, `distributed`);
/// - structured data `osquery@32473` (32473 is the example enterprise number of RFC 5612) with
///   `host_identifier`, `name` (when the record has one), `log_type` and `node`;
/// - MSG: the record's JSON exactly as the agent sent it (no BOM: it is not always valid UTF-8).
struct SyslogMessage {
    static let structuredDataID = "osquery@32473"

    var appName: String
    var facility: SyslogFacility

    /// The frame for `record`: its length, a space and the message.
    func writeFrame(_ record: LogRecord, into buffer: inout ByteBuffer) {
        let head = header(for: record)
        buffer.writeString("\(head.utf8.count + record.json.readableBytes) ")
        buffer.writeString(head)
        buffer.writeImmutableBuffer(record.json)
    }

    /// Everything before MSG, with the space that separates it from MSG.
    func header(for record: LogRecord) -> String {
        let priority = facility.code * 8 + Self.severity(of: record)
        var data = "[\(Self.structuredDataID) host_identifier=\"\(Self.escaped(record.hostIdentifier))\""
        if let name = record.queryName { data += " name=\"\(Self.escaped(name))\"" }
        data += " log_type=\"\(record.kind.rawValue)\" node=\"\(Self.escaped(record.nodeID))\"]"
        return "<\(priority)>1 \(Self.timestamp(record.receivedAt)) \(Self.headerField(record.hostIdentifier, limit: 255)) \(appName) - \(record.kind.rawValue) \(data) "
    }

    /// Syslog severity: osquery's status severities 0-3 (INFO, WARNING, ERROR, FATAL) as 6, 4, 3, 2.
    static func severity(of record: LogRecord) -> Int {
        guard record.kind == .status, let severity = record.severity else { return 6 }
        switch severity {
        case ...0: return 6
        case 1: return 4
        case 2: return 3
        default: return 2
        }
    }

    /// A PARAM-VALUE: `"`, `\` and `]` escaped with a backslash (RFC 5424 6.3.3).
    static func escaped(_ value: String) -> String {
        guard value.contains(where: { $0 == "\"" || $0 == "\\" || $0 == "]" }) else { return value }
        var out = ""
        out.reserveCapacity(value.utf8.count + 4)
        for character in value {
            if character == "\"" || character == "\\" || character == "]" { out.append("\\") }
            out.append(character)
        }
        return out
    }

    /// A header field (HOSTNAME, APP-NAME): printable US-ASCII only, at most `limit` bytes, `-` when
    /// empty (the nil value).
    static func headerField(_ value: String, limit: Int) -> String {
        var bytes = value.utf8.prefix(limit).map { (33...126).contains($0) ? $0 : UInt8(ascii: "_") }
        if bytes.isEmpty { bytes = [UInt8(ascii: "-")] }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// RFC 3339 in UTC with microseconds: `2026-12-02T04:07:32.342123Z`.
    static func timestamp(_ date: Date) -> String {
        let interval = date.timeIntervalSince1970
        let whole = interval.rounded(.down)
        var time = time_t(whole)
        var parts = tm()
        gmtime_r(&time, &parts)
        // Rounded: the spool keeps milliseconds, and 0.342 read back must stay .342000, not .341999.
        let micros = min(999_999, max(0, Int(((interval - whole) * 1_000_000).rounded())))
        return String(format: "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1,
                      Int(parts.tm_mday), Int(parts.tm_hour), Int(parts.tm_min), Int(parts.tm_sec), micros)
    }

    /// An APP-NAME as RFC 5424 allows it: 1 to 48 printable US-ASCII characters.
    static func isValidAppName(_ name: String) -> Bool {
        (1...48).contains(name.utf8.count) && name.utf8.allSatisfy { (33...126).contains($0) }
    }
}
