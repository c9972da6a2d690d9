public import struct Foundation.Date
public import NIOCore

/// What kind of osquery output a record is.
///
/// `result` and `status` are the two `log_type`s of the logger endpoint; `distributed` is one query's
/// answer from a distributed write.
public enum LogKind: String, Sendable, CaseIterable {
    case result
    case status
    case distributed
}

/// One line of osquery output: an element of a logger `data` array or one distributed query's answer.
///
/// The record keeps the item's original JSON bytes (compact, one line, invalid UTF-8 left as received)
/// so sinks can write exactly what the agent sent. The fields beside it are what routing and file
/// layout need and were read once, when the request was decoded.
public struct LogRecord: Sendable {
    /// The kind of output.
    public var kind: LogKind
    /// The gateway's id for the node that sent it.
    public var nodeID: String
    /// The node's `host_identifier` as given at enrollment.
    public var hostIdentifier: String
    /// The name of the enroll secret the node enrolled with, if any.
    public var secretName: String?
    /// Query name (`name` of a result item) or distributed query id.
    public var queryName: String?
    /// The node's platform (`linux`, `darwin`, `windows`, ...), for routing.
    public var platform: String?
    /// True for snapshot results (`action: "snapshot"`), which osquery writes to their own file.
    public var isSnapshot: Bool
    /// Status severity: 0 INFO, 1 WARNING, 2 ERROR, 3 FATAL.
    public var severity: Int?
    /// When the gateway received the request.
    public var receivedAt: Date
    /// The item's JSON: one compact line, no trailing newline.
    public var json: ByteBuffer
    /// Already delivered, while the agent waited, to the osquery backend the gateway fronts (a
    /// distributed write the backend answered). The upstream sink skips it so the backend does not
    /// get it twice; every other sink takes it as usual.
    public var passedThrough: Bool

    public init(
        kind: LogKind, nodeID: String, hostIdentifier: String, secretName: String? = nil,
        queryName: String? = nil, platform: String? = nil, isSnapshot: Bool = false, severity: Int? = nil,
        receivedAt: Date = Date(), json: ByteBuffer, passedThrough: Bool = false
    ) {
        self.kind = kind
        self.nodeID = nodeID
        self.hostIdentifier = hostIdentifier
        self.secretName = secretName
        self.queryName = queryName
        self.platform = platform
        self.isSnapshot = isSnapshot
        self.severity = severity
        self.receivedAt = receivedAt
        self.json = json
        self.passedThrough = passedThrough
    }
}
