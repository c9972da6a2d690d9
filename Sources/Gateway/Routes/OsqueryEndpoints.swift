/// Request paths of the osquery API, as set on the agent with the `*_tls_endpoint` flags.
struct OsqueryEndpoints: Sendable, Equatable {
    var enroll = "/enroll"
    var config = "/config"
    var logger = "/logger"
    var distributedRead = "/distributed/read"
    var distributedWrite = "/distributed/write"
    var carveStart = "/carve/start"
    var carveBlock = "/carve/block"

    /// Every path, for checks that they differ.
    var all: [String] { [enroll, config, logger, distributedRead, distributedWrite, carveStart, carveBlock] }
}

extension OsqueryEndpoints {
    /// `endpoints`: `enroll`, `config`, `logger`, `distributed_read`, `distributed_write`,
    /// `carve_start`, `carve_block`; each a path starting with `/`, all different.
    init(reading section: MappingReader) {
        self.init()
        func path(_ name: String, _ keyPath: WritableKeyPath<OsqueryEndpoints, String>) {
            guard let value = section.string(name) else { return }
            if value.hasPrefix("/") && !value.contains("?") {
                self[keyPath: keyPath] = value
            } else {
                section.reader.report(section.key(name), section.value(name), "must be a path starting with / and without ?")
            }
        }
        path("enroll", \.enroll)
        path("config", \.config)
        path("logger", \.logger)
        path("distributed_read", \.distributedRead)
        path("distributed_write", \.distributedWrite)
        path("carve_start", \.carveStart)
        path("carve_block", \.carveBlock)
        if Set(all).count != all.count {
            section.reader.report(section.path, section.node, "two endpoints share a path")
        }
    }
}
