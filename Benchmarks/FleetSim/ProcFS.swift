#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// A process's CPU time and memory, read from `/proc` as `Benchmarks/gateway-bench.sh` does: CPU is
/// utime + stime from `/proc/<pid>/stat` over `sysconf(_SC_CLK_TCK)`, memory VmRSS and VmHWM from
/// `/proc/<pid>/status`. Linux only; elsewhere every read is nil.
struct ProcessSample: Sendable {
    var cpuSeconds: Double
    var rssBytes: Int
    /// The process's peak RSS since it started (VmHWM).
    var peakRSSBytes: Int
    var threads: Int
    /// Entries of `/proc/<pid>/fd`, when readable.
    var openFiles: Int?
}

enum ProcFS {
    static let clockTicks = Double(sysconf(Int32(_SC_CLK_TCK)))

    /// `pid` is a process id or `self`.
    static func sample(_ pid: String) -> ProcessSample? {
        guard let stat = readText("/proc/\(pid)/stat"), let commEnd = stat.lastIndex(of: ")") else { return nil }
        // After "pid (comm)": field 3 (state) is index 0, so utime (14) and stime (15) are 11 and 12.
        let fields = stat[stat.index(after: commEnd)...].split(separator: " ")
        guard fields.count > 12, let utime = Double(fields[11]), let stime = Double(fields[12]) else { return nil }
        let status = readText("/proc/\(pid)/status") ?? ""
        let files = try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count
        return ProcessSample(
            cpuSeconds: (utime + stime) / clockTicks,
            rssBytes: statusValue(status, "VmRSS:") * 1024,
            peakRSSBytes: statusValue(status, "VmHWM:") * 1024,
            threads: statusValue(status, "Threads:"),
            openFiles: files)
    }

    /// The soft open-file limit of `pid` from `/proc/<pid>/limits`.
    static func openFileLimit(_ pid: String) -> Int? {
        guard let limits = readText("/proc/\(pid)/limits") else { return nil }
        for line in limits.split(separator: "\n") where line.hasPrefix("Max open files") {
            let words = line.split(separator: " ")
            return words.count > 3 ? Int(words[3]) : nil
        }
        return nil
    }

    /// Raises this process's soft open-file limit to the hard one (every host connection is a file)
    /// and returns the soft limit in force.
    static func raiseOpenFileLimit() -> Int {
        #if os(Linux)
        var limit = rlimit()
        let resource = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
        guard getrlimit(resource, &limit) == 0 else { return 1024 }
        if limit.rlim_cur < limit.rlim_max {
            var raised = limit
            raised.rlim_cur = limit.rlim_max
            if setrlimit(resource, &raised) == 0 { limit = raised }
        }
        return Int(clamping: limit.rlim_cur)
        #else
        return openFileLimit("self") ?? 1024
        #endif
    }

    /// The number after `key` in a `/proc/<pid>/status` text (kB for memory lines).
    private static func statusValue(_ status: String, _ key: String) -> Int {
        for line in status.split(separator: "\n") where line.hasPrefix(key) {
            // "VmRSS:\t  123456 kB": tabs and spaces both separate.
            let words = line.dropFirst(key.count).split(whereSeparator: { $0 == " " || $0 == "\t" })
            return words.first.flatMap { Int($0) } ?? 0
        }
        return 0
    }

    /// A whole small file through read(2): `/proc` files report a size of 0, so nothing that trusts
    /// the size will do.
    private static func readText(_ path: String) -> String? {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16384)
        while bytes.count < 1 << 20 {
            let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count <= 0 { break }
            bytes.append(contentsOf: chunk[0..<count])
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
