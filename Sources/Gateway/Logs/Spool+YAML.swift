import Sinks

extension Spool.Configuration {
    /// `spool`: `directory` (in `data_dir`), `max_size`, `segment_size`, `commit_window`, `resend_window`.
    init(reading section: MappingReader) {
        self.init(directory: section.dataPath("directory") ?? section.reader.inDataDir("spool"))
        if let value = section.size("max_size", minimum: 1 << 20) { maxSize = value }
        if let value = section.size("segment_size", minimum: 64 << 10) { segmentSize = value }
        if let value = section.duration("commit_window") { commitWindow = value }
        if let value = section.duration("resend_window") { resendWindow = value }
        if segmentSize > maxSize {
            section.reader.report(section.key("segment_size"), section.value("segment_size"), "must not be larger than max_size")
        }
    }
}
