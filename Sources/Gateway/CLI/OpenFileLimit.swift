#if canImport(Glibc)
import Glibc
#endif
import Logging

/// Every agent connection is an open file, and osquery 5.23 leaves one idle connection per host
/// (a new one per request). Service managers often start processes with a soft limit of 1,024, which
/// would cap the gateway near 1,000 hosts, so `serve` raises the soft limit to the hard one.
enum OpenFileLimit {
    static func raise(logger: Logger) {
        #if canImport(Glibc)
        var limit = rlimit()
        let resource = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
        guard getrlimit(resource, &limit) == 0 else { return }
        let before = limit.rlim_cur
        if limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max
            if setrlimit(resource, &limit) != 0 { limit.rlim_cur = before }
        }
        logger.info("open file limit", metadata: ["gw.soft": "\(limit.rlim_cur)", "gw.was": "\(before)", "gw.hard": "\(limit.rlim_max)"])
        #endif
    }
}
