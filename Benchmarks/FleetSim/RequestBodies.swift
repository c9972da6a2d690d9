import NIOCore

/// Who a host is: fixed for the run, so a restarted host is found again by the gateway
/// (`instance_id`, then `uuid`, docs/protocol.md#enrollment) rather than enrolled as a new node.
struct HostIdentity: Sendable {
    let index: Int
    let hostIdentifier: String
    let uuid: String
    let instanceID: String

    init(index: Int, prefix: String) {
        self.index = index
        hostIdentifier = "\(prefix)-\(Self.padded(index, 6))"
        let hex = String(index, radix: 16, uppercase: true)
        let tail = String(repeating: "0", count: max(0, 12 - hex.count)) + hex
        uuid = "4C4C4544-0042-4810-8058-" + tail
        instanceID = "5e1f0c2a-7b3d-4c8e-9a61-" + tail.lowercased()
    }

    private static func padded(_ value: Int, _ width: Int) -> String {
        let text = String(value)
        return String(repeating: "0", count: max(0, width - text.count)) + text
    }
}

/// The bodies osqueryd 5.23 sends (docs/protocol.md, and Tests/GatewayTests/Support/AgentEmulator.swift),
/// written straight into buffers: no dictionaries and no serializer per request.
struct RequestBodies: Sendable {
    let secret: String
    let secretField: String

    /// Enroll: the secret, the host identifier, Linux's platform mask and the first row of the four
    /// host_details tables, every value a string.
    func enroll(_ host: HostIdentity) -> ByteBuffer {
        let id = json(host.hostIdentifier)
        var text = "{\(json(secretField)):\(json(secret)),\"host_identifier\":\(id),\"platform_type\":\"9\",\"host_details\":{"
        text += "\"os_version\":{\"name\":\"Debian GNU/Linux\",\"version\":\"12 (bookworm)\",\"major\":\"12\",\"minor\":\"0\","
        text += "\"patch\":\"0\",\"build\":\"\",\"platform\":\"debian\",\"platform_like\":\"debian\",\"codename\":\"bookworm\","
        text += "\"arch\":\"x86_64\",\"pid_with_namespace\":\"0\"},"
        text += "\"osquery_info\":{\"pid\":\"\(1000 + host.index % 30000)\",\"uuid\":\"\(host.uuid)\",\"instance_id\":\"\(host.instanceID)\","
        text += "\"version\":\"5.23.1\",\"config_hash\":\"\",\"config_valid\":\"0\",\"extensions\":\"active\","
        text += "\"build_platform\":\"linux\",\"build_distro\":\"centos7\",\"start_time\":\"1772546706\",\"watcher\":\"-1\",\"platform_mask\":\"9\"},"
        text += "\"system_info\":{\"hostname\":\(id),\"uuid\":\"\(host.uuid)\",\"cpu_type\":\"x86_64\",\"cpu_subtype\":\"85\","
        text += "\"cpu_brand\":\"Intel(R) Xeon(R) Gold 6248R CPU @ 3.00GHz\",\"cpu_physical_cores\":\"4\",\"cpu_logical_cores\":\"8\","
        text += "\"physical_memory\":\"16777216000\",\"hardware_vendor\":\"Dell Inc.\",\"hardware_model\":\"PowerEdge R640\","
        text += "\"hardware_serial\":\"SIM\(host.index)\",\"computer_name\":\(id),\"local_hostname\":\(id)},"
        text += "\"platform_info\":{\"vendor\":\"Dell Inc.\",\"version\":\"2.17.1\",\"date\":\"10/10/2023\",\"revision\":\"2.17\"}}}"
        return ByteBuffer(string: text)
    }

    /// Config and distributed read: only the node key.
    func nodeKeyOnly(_ nodeKey: String) -> ByteBuffer {
        ByteBuffer(string: "{\"node_key\":\(json(nodeKey))}")
    }

    /// A logger batch of `count` result lines numbered from `first` (about 330 bytes each, event form).
    /// The same numbers give the same bytes, so a resent batch is identical, as osquery's is.
    func logger(_ host: HostIdentity, nodeKey: String, first: Int, count: Int) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.reserveCapacity(64 + count * 360)
        buffer.writeString("{\"node_key\":\(json(nodeKey)),\"log_type\":\"result\",\"data\":[")
        let names = ["pack_incident-response_process_events", "pack_it-compliance_deb_packages", "listening_ports"]
        for line in first..<(first + count) {
            if line > first { buffer.writeString(",") }
            buffer.writeString("{\"name\":\"\(names[line % names.count])\",\"hostIdentifier\":\(json(host.hostIdentifier)),")
            buffer.writeString("\"calendarTime\":\"Tue Mar  3 14:05:06 2026 UTC\",\"unixTime\":\(1_772_546_706 + line / 4),")
            buffer.writeString("\"epoch\":0,\"counter\":\(line),\"numerics\":false,\"decorations\":{\"host_uuid\":\"\(host.uuid)\"},")
            buffer.writeString("\"columns\":{\"pid\":\"\(1000 + line % 30000)\",\"path\":\"/usr/lib/worker/bin/worker\(line % 17)\",")
            buffer.writeString("\"cmdline\":\"worker --id \(line) --mode safe\",\"uid\":\"\(line % 1001)\"},\"action\":\"added\"}")
        }
        buffer.writeString("]}")
        return buffer
    }

    /// A distributed write answering every query id with no rows, status 0 and the 5.8+ stats.
    func distributedWrite(queryIDs: [String], nodeKey: String) -> ByteBuffer {
        let ids = queryIDs.map { json($0) }
        let queries = ids.map { "\($0):[]" }.joined(separator: ",")
        let statuses = ids.map { "\($0):0" }.joined(separator: ",")
        let messages = ids.map { "\($0):\"\"" }.joined(separator: ",")
        let stats = ids.map { "\($0):{\"wall_time_ms\":3,\"user_time\":1,\"system_time\":0,\"memory\":0}" }.joined(separator: ",")
        return ByteBuffer(string: "{\"queries\":{\(queries)},\"statuses\":{\(statuses)},\"messages\":{\(messages)},"
            + "\"stats\":{\(stats)},\"node_key\":\(json(nodeKey))}")
    }

    /// A JSON string literal of `text`.
    private func json(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}
