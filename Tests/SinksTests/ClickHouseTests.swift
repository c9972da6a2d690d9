import Foundation
import NIOCore
import Testing
@testable import Sinks

/// The `clickhouse` format against a real ClickHouse (started by `scripts/with-clickhouse.sh`, which
/// `make test` uses): records go in through the forwarder and come back out through a query.
@Suite(.enabled(if: ProcessInfo.processInfo.environment["CLICKHOUSE_URL"] != nil, "needs CLICKHOUSE_URL (make test starts ClickHouse)"))
struct ClickHouseTests {
    let url = ProcessInfo.processInfo.environment["CLICKHOUSE_URL"] ?? ""

    func query(_ sql: String) throws -> Data {
        let (status, output) = try run(["curl", "-sf", url + "/", "--data-binary", sql])
        #expect(status == 0, "\(sql)")
        return output
    }

    @Test func recordsInsertedThroughTheForwarderReadBackTheSame() async throws {
        let table = "osquery_logs_\(UUID().uuidString.prefix(8).lowercased())"
        _ = try query("CREATE TABLE \(table) (received_at UInt32, node String, log_type String, name String, host_identifier String, record String) ENGINE = Log")
        var configuration = HTTPForwarderSink.Configuration(name: "clickhouse", url: url + "/")
        configuration.format = .clickhouse
        configuration.table = table
        configuration.compression = .gzip
        configuration.batching = Batching(maxRecords: 100, maxBytes: 1 << 20)
        let sink = try HTTPForwarderSink(configuration: configuration)
        var sent: [String] = []
        try await withPipeline([.init(sink: sink)]) { pipeline in
            for batch in 0..<5 {
                for node in ["a", "b"] {
                    var records = (0..<50).map { record(batch * 50 + $0, node: node) }
                    records[0].json = ByteBuffer(string: #"{"id":\#(batch * 50),"node":"\#(node)","quote":"say \"hi\"\n"}"#)
                    sent += records.map { String(buffer: $0.json) }
                    try await pipeline.append(records)
                }
            }
            #expect(await eventually {
                (try? String(decoding: query("SELECT count() FROM \(table)"), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)) == "500"
            })
        }
        let rows = try query("SELECT node, log_type, name, host_identifier, record FROM \(table) FORMAT JSON")
        let data = try #require((try JSONSerialization.jsonObject(with: rows) as? [String: Any])?["data"] as? [[String: Any]])
        #expect(data.count == 500)
        #expect(Set(data.compactMap { $0["record"] as? String }) == Set(sent))
        #expect(Set(data.compactMap { $0["node"] as? String }) == ["a", "b"])
        #expect(data.allSatisfy { $0["log_type"] as? String == "result" && $0["name"] as? String == "pack_test_q" })
        _ = try query("DROP TABLE \(table)")
    }
}
