import Foundation

/// Sizes in configuration files.
enum ByteSize {
    static func parse(_ text: String) -> Int? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        let units: [(String, Int)] = [
            ("KiB", 1 << 10), ("MiB", 1 << 20), ("GiB", 1 << 30), ("TiB", 1 << 40),
            ("KB", 1_000), ("MB", 1_000_000), ("GB", 1_000_000_000), ("TB", 1_000_000_000_000), ("B", 1),
        ]
        for (suffix, factor) in units where trimmed.hasSuffix(suffix) {
            let number = trimmed.dropLast(suffix.count).trimmingCharacters(in: .whitespaces)
            guard let value = Int(number), value >= 0 else { return nil }
            let (bytes, overflow) = value.multipliedReportingOverflow(by: factor)
            return overflow ? nil : bytes
        }
        guard let value = Int(trimmed), value >= 0 else { return nil }
        return value
    }
}

/// Durations in configuration files.
enum DurationText {
    static func parse(_ text: String) -> Duration? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        let units: [(String, Int64)] = [("ms", 1), ("s", 1_000), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000)]
        for (suffix, millis) in units where trimmed.hasSuffix(suffix) {
            let number = trimmed.dropLast(suffix.count)
            guard let value = Int64(number), value >= 0 else { continue }
            return .milliseconds(value * millis)
        }
        return nil
    }
}

/// A `host:port` to listen on (agents, admin).
struct ListenAddress: Sendable, Equatable, CustomStringConvertible {
    var host: String
    var port: Int

    /// Parses `host:port` or `[v6]:port`.
    init?(parsing text: String) {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
            (0...65535).contains(port)
        else { return nil }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { return nil }
        self.init(host: host, port: port)
    }

    init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

extension MappingReader {
    /// A `host:port` value; `example` shows the expected form in the problem.
    func listenAddress(_ name: String, example: String) -> ListenAddress? {
        guard let text = string(name) else { return nil }
        guard let address = ListenAddress(parsing: text) else {
            reader.report(key(name), value(name), "expected host:port such as \(example), found \"\(text)\"")
            return nil
        }
        return address
    }
}

/// swift-log level names accepted by `log_level`.
enum LogLevelName: String, CaseIterable {
    case trace, debug, info, notice, warning, error, critical
}

/// Turns configuration paths into absolute ones.
enum PathResolver {
    static func absolute(_ path: String, base: String) -> String {
        let joined = path.hasPrefix("/") ? path : (base as NSString).appendingPathComponent(path)
        return (joined as NSString).standardizingPath
    }
}
