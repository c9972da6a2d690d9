import NIOCore

/// The enroll body (docs/protocol.md#enrollment). All fields are optional on the wire; types are checked.
struct EnrollRequest: Sendable {
    var secret: String?
    var hostIdentifier: String = ""
    var platformType: String = ""
    /// `host_details` as received, compacted to one line.
    var hostDetails: String = "{}"
    /// `osquery_info.instance_id`, else `system_info.uuid`: what links repeated enrollments.
    var hostKey: String?

    /// Decodes `body`; the secret is read from `secretField` (osquery `--tls_enroll_override`).
    /// - Throws: `OsqueryBodyError` for malformed JSON or wrong types.
    init(body: ByteBuffer, secretField: String) throws(OsqueryBodyError) {
        self = try body.scanOsqueryBody("enroll") { (scanner) throws(JSONError) -> EnrollRequest in
            var request = EnrollRequest()
            try request.parse(&scanner, secretField: secretField)
            return request
        }
    }

    private mutating func parse(_ scanner: inout JSONScanner, secretField: String) throws(JSONError) {
        try scanner.forEachMember { (scanner, key) throws(JSONError) in
            switch key {
            case secretField where secret == nil:
                secret = try scanner.readString(for: secretField)
            case "host_identifier":
                hostIdentifier = try scanner.readString(for: "host_identifier")
            case "platform_type":
                if try scanner.peek() == UInt8(ascii: "\"") {
                    platformType = try scanner.readString()
                } else {
                    let range = try scanner.skipNumber()
                    platformType = String(decoding: UnsafeRawBufferPointer(rebasing: scanner.bytes[range]), as: UTF8.self)
                }
            case "host_details":
                guard try scanner.peek() == UInt8(ascii: "{") else {
                    throw JSONError("host_details must be an object", at: scanner.index)
                }
                var copy = scanner
                let details = try copy.readValue(depth: 1)
                let range = try scanner.skipValue(depth: 1)
                hostDetails = String(decoding: scanner.compacted(range), as: UTF8.self)
                hostKey = Self.hostKey(details)
            default:
                try scanner.skipValue(depth: 1)
            }
        }
        try scanner.expectEnd()
    }

    private init() {}

    private static func hostKey(_ details: JSONValue) -> String? {
        if let instance = details["osquery_info"]?["instance_id"]?.string, !instance.isEmpty {
            return "instance:" + instance
        }
        if let uuid = details["system_info"]?["uuid"]?.string, !uuid.isEmpty {
            return "uuid:" + uuid
        }
        return nil
    }
}
